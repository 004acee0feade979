-- Argo CD health of a dualcap PowerBudget (kstatus conditions: Ready, Stalled).
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
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "In effect"
  return hs
end
hs.status = "Progressing"
hs.message = (ready ~= nil and (ready.message or ready.reason)) or "Waiting for its Site"
return hs
