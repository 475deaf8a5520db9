-- Retry: the operator makes a new run with the same spec (<name>-retry-<n>, retryOf recorded).
-- A new value of the annotation asks for one more retry.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local retried = 0
if obj.status ~= nil and obj.status.retriedAs ~= nil then
  retried = #obj.status.retriedAs
end
obj.metadata.annotations["selfbootstrap.dev/retry"] = tostring(retried + 1)
return obj
