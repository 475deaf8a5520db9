-- Argo CD health of a SelfBootstrapRun (selfbootstrap.dev/v1alpha1).
--   Healthy      the run succeeded (or was superseded: a newer release is there, nothing to do)
--   Degraded     the run failed or rolled back (the message says what failed)
--   Suspended    the run waits for another run that holds its workload
--   Progressing  the run is in flight, or the operator has not seen this generation yet
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to accept the run"
  return hs
end
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to see the latest spec"
  return hs
end
local phase = status.phase
local message = phase
if status.message ~= nil and status.message ~= "" then
  message = phase .. ": " .. status.message
end
-- A run of a StatefulSet or DaemonSet says which (a Deployment is what a run targets unless it says otherwise).
local target = obj.spec ~= nil and obj.spec.target or nil
if target ~= nil and target.kind ~= nil and target.kind ~= "Deployment" and target.name ~= nil then
  message = message .. " (" .. target.kind .. " " .. target.name .. ")"
end
if phase == "Succeeded" or phase == "Superseded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
elseif status.reason == "Queued" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
