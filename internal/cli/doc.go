// Package cli is the command line of reyes-leader and reyes-follower: their
// configuration (a YAML file < REYES_* environment < flags, read with koanf;
// unknown keys are errors), its validation, the wiring of a reyes.Leader or
// reyes.Follower from it, and the exit-code scheme that all three binaries
// share (reyesctl's package internal/ctl uses the same codes).
//
// It is internal on purpose: the library's API is package reyes (Leader,
// Follower, stores, state, identity, status), and a program that embeds reyes
// builds those from its own configuration instead of from flags. The mains in
// cmd/ only call Main with RunLeader or RunFollower.
package cli
