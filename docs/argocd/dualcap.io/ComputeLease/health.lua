-- Argo CD health of a dualcap ComputeLease: by phase, after kstatus' observedGeneration
-- and Stalled. Pending and Admitted leases progress; a preempted one is Suspended until
-- power returns; Running and Completed are healthy; Failed is degraded.
-- Self-contained: Argo CD takes one script per kind, so `condition` is repeated in each.
local hs = {}
local function condition(obj, type)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then return c end
  end
  return nil
end
if obj.status == nil or obj.status.observedGeneration == nil
    or obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for dualcap to observe the latest spec"
  return hs
end
local stalled = condition(obj, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason
  return hs
end
local ready = condition(obj, "Ready")
local why = (ready ~= nil and ready.message) or ""
local phase = obj.status.phase
if phase == "Running" or phase == "Completed" then
  hs.status = "Healthy"
elseif phase == "Preempted" then
  hs.status = "Suspended"
elseif phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = phase or "Pending"
if why ~= "" then hs.message = hs.message .. ": " .. why end
return hs
