package reyes

// PlanDigest exposes planDigest to the external tests: the digest of
// everything a plan loads (LoadedRecord.PlanDigest).
var PlanDigest = planDigest
