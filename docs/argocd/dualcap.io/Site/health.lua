-- Argo CD health of a dualcap Site (kstatus conditions: Ready, Reconciling, Stalled,
-- plus WithinEnvelope).
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
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "The site is suspended: dualcap changes nothing"
  return hs
end
local ready = condition(obj, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Within the envelope, nothing in flight"
  return hs
end
local within = condition(obj, "WithinEnvelope")
local reconciling = condition(obj, "Reconciling")
if within ~= nil and within.status == "False"
    and (reconciling == nil or reconciling.status ~= "True") then
  hs.status = "Degraded"
  hs.message = within.message or "Committed draw above the limit"
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.message ~= nil and reconciling.message ~= "" then
  hs.message = reconciling.message
elseif ready ~= nil then
  hs.message = ready.message or ready.reason
else
  hs.message = "Waiting for the first reconcile"
end
return hs
