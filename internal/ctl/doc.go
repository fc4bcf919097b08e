// Package ctl is reyesctl, the operator's tool around reyes' signed
// rulesets: it makes signing keys (keygen), checks a published object as a
// follower would (verify), splits it for stock GnuPG (unpack), summarises it
// (inspect), answers "what would reyes do with this packet on that host"
// (explain), says what the follower on this host loaded and whether the
// kernel still holds it (status), and takes reyes out of the kernel
// (remove).
//
// Everything lives behind one call, Run, so that the binary in
// cmd/reyesctl is a few lines and tests drive the real command line in
// process. Run writes results to stdout, never reads stdin or the
// environment itself (the S3 SDK does, for credentials and endpoints), and
// returns an error that ExitCode maps to the process status: 0 ok, 1
// refused or failed, 2 usage.
//
// What it does not do: it never publishes (reyes-leader does), never writes
// follower state, and changes the kernel only when asked to remove reyes
// (status only reads it).
// explain answers from the rendered policy alone (render.Decide); the host's
// other iptables rules are not modelled.
package ctl
