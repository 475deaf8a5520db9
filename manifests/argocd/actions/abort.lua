-- Abort: the operator stops the run, and rolls the Deployment back if the run had deployed
-- (rollbackPolicy.onAbort). Admission checks that the user may patch the run's Deployment.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["selfbootstrap.dev/abort"] = "aborted from Argo CD"
return obj
