-- Which actions Argo CD offers on a SelfBootstrapRun: abort while it is in flight, retry once it ended.
local actions = {}
local phase = nil
if obj.status ~= nil then
  phase = obj.status.phase
end
local finished = phase == "Succeeded" or phase == "Failed" or phase == "RolledBack" or phase == "Superseded"
actions["abort"] = {["disabled"] = finished}
actions["retry"] = {["disabled"] = not finished}
return actions
