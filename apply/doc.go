// Package apply loads a render.Plan into the kernel: ipsets with
// "ipset restore" (filled under temporary names, then swapped in) and
// rules with one "iptables-restore --wait" per family. It is the only
// package of reyes that touches the kernel.
//
// What it guarantees:
//   - Atomic per family: rules load in one iptables-restore transaction;
//     sets are swapped, never flushed while live. If any step fails, the
//     previous rules and sets are back in force, temporary sets are gone,
//     and the *StepError names the step and the input line the tool
//     rejected.
//   - Minimal: a set whose members did not change is not touched; an
//     unchanged plan makes no restore call. Whether the rules changed is
//     read from the plan hash in the comment of REYES-INPUT's first rule
//     (one "iptables -S REYES-INPUT 1"), so a flushed chain or a missing
//     jump is detected and repaired on the next run.
//   - Shared mode touches only REYES-* chains, reyes4-/reyes6- sets and
//     the plan's hooks: one jump at the top of each built-in chain it
//     names (FamilyPlan.Hooks; INPUT -> REYES-INPUT when empty), kept
//     there idempotently. Other rules (an admin's, Docker's) survive
//     Apply and Remove. Exclusive mode writes the whole filter table.
//   - Lockout safety: Options.FailSafe is checked against the plan before
//     anything is loaded; a flag file (Options.DisableFile) stops Apply.
//
// The iptables backend (nft or legacy) follows "iptables --version" unless
// Options.Backend says otherwise, and the matching *-restore tools are
// used, always with --wait for the xtables lock.
//
// All kernel access goes through the Runner interface: ExecRunner runs
// the real tools (optionally inside a network namespace); package
// applytest has a stateful fake for unit tests.
//
// What it does not do: decide policy (package render does), parse or
// compare every rule in the kernel, or manage tables other than filter.
// Apply and Remove must not run concurrently on the same kernel.
package apply
