-- Retry: the operator makes a new run with the same spec (<name>-retry-<n>, retryOf recorded).
-- A new value of the annotation asks for one more retry. Argo CD cannot say which person asked, and
-- admission refuses a retry-requested-by naming anyone but the one who asks (a previous retry's name
-- would be refused), so the annotation is removed: the new run is made on behalf of an unnamed user.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local retried = 0
if obj.status ~= nil and obj.status.retriedAs ~= nil then
  retried = #obj.status.retriedAs
end
obj.metadata.annotations["selfbootstrap.dev/retry"] = tostring(retried + 1)
obj.metadata.annotations["selfbootstrap.dev/retry-requested-by"] = nil
return obj
