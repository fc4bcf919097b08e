// Package apply loads a render.Plan into the kernel: ipsets with
// "ipset restore" and rules with one "iptables-restore --wait" per
// family. It is the only package of reyes that touches the kernel.
//
// # The invariant
//
// For every packet, at every instant of an Apply and after a kill at any
// point of it, the verdict is the one the old policy gives or the one the
// new policy gives, per address family. Both families are one unit, one
// Apply runs at a time, and nothing is applied that cannot be recorded.
//
// The argument. The verdict of a packet depends on the rules and on the
// members of the sets the rules refer to; a set no rule refers to decides
// nothing. Every set of a plan has two slots in the kernel: its name and
// its second name (name + SlotSuffix, "-b", as long as render.TempSuffix
// and so within ipset's limit on names). The kernel's reference count
// ("ipset list -t", References) says which slot the rules use, the live
// one; the other is free. The rules apply loads are the plan's text with
// each set named by its slot; the plan hash (render.FamilyPlan.Hash) does
// not depend on slots. Apply never changes the members of a live set; it
// changes the kernel only by these steps:
//
//  1. Fill: a changed set is created and filled under its free slot. No
//     rule refers to it: no verdict changes.
//  2. Switch, one of two ways:
//     a. Rule load: one iptables-restore loads the new rules, in which each
//     changed set is named by the slot just filled, together with the
//     hooks and the deletion of chains that left the plan.
//     iptables-restore commits a table all or nothing (one nf_tables
//     transaction, or one x_tables table replacement), so the family goes
//     from old rules with old members to new rules with new members in
//     one step.
//     b. In-place swap, only when the kernel's rules are already the
//     plan's (same plan hash, hooks in place): "ipset swap" exchanges a
//     filled slot with the live one, atomically per set. With one changed
//     set the family goes from old to new in one step. With several, the
//     swaps are sequential and a packet may meet some sets new and some
//     old. That stays within old-or-new when every rule that matches a set
//     allows (render's set rules all go to REYES-ALLOW) and no address
//     leaves one changed set while it joins another: the verdict then is
//     "allowed" exactly when some allowing rule before the first set-free
//     deciding rule matches; a rule matching in the mix matches in old or
//     in new (its set is old or new), so a mixed "allow" is old's or new's;
//     a mixed "deny" while old and new both allow would need the source in
//     a set already swapped that lost it and in a set not yet swapped that
//     gains it, which is the excluded move. Apply reads the members of the
//     changed sets to check this (at most 64 sets; more always switch by
//     rule load), and otherwise switches by rule load.
//  3. Cleanup: the other slot of each changed set (now holding the old
//     members, unreferenced) and the sets that left the plan are
//     destroyed. The kernel refuses to destroy a set a rule refers to, and
//     no rule refers to these: no verdict changes.
//
// A kill leaves the kernel after one of these steps: the old policy with
// unreferenced filled sets (after 1), or the new policy with unreferenced
// old sets (after 2), or part-way through a sequence of in-place swaps
// that cannot mix (2b). The next run recognises the live slots by their
// references, destroys what nothing refers to, and completes.
//
// Both families as one unit: Apply reads and plans both families, then
// writes both new states as prepared files (apply-ipv4.json.new) in
// Options.StateDir, which finds a read-only or full directory before the
// kernel is touched (ErrStateNotWritable). Then it fills the free slots of
// both families (step 1; one "ipset restore" for both when the plan is
// small), then switches IPv4, then IPv6 (step 2). If IPv6 fails, IPv4 is
// put back: its in-place swaps are swapped back, or its previous rules
// are loaded back in one restore (the text the previous run recorded it
// loaded, apply-ipv4.rules, when the kernel still runs it: its plan hash,
// live slots and hooks; else, after a reboot, a flush by another tool or
// a kill, the table read with iptables-save before the change); the
// filled sets of both families go. Only when both are through are unused
// sets destroyed and the states committed (rename). A kill between a
// kernel change and the commit leaves the prepared file: the next run
// then distrusts the record and reads the kernel (members with "ipset
// save", the table with "iptables-save"), and keeps distrusting it until
// a run completes. A kill between the two families can leave IPv4 on the
// new policy and IPv6 on the old one until the next run: the invariant is
// per family, and no record then claims either.
//
// One at a time: callers hold Lock on the state directory from before the
// first kernel change until their state is recorded; the follower and
// reyesctl remove do. Apply itself does not lock, so that a caller can
// hold the lock across its own state.
//
// Other guarantees:
//   - Minimal: a set whose members did not change is not touched; an
//     unchanged plan makes no restore call. Whether the rules changed is
//     read from the plan hash in the comment of REYES-INPUT's first rule
//     (one "iptables -S REYES-INPUT 1"; without a record, one
//     "iptables-save" of the table, which a first run needs anyway), so a
//     flushed chain or a missing jump is detected and repaired on the next
//     run. Reads change nothing and run concurrently (the set headers, the
//     two families); changes run in the order above. A one-member change
//     is one set filled and swapped, no rule load.
//   - A first run (a state directory that records nothing, committed or
//     prepared, and no reyes chain in either table) does not read the set
//     headers: no run with this directory made a set. It creates each set
//     of the plan under its own name, without -exist, so that "ipset
//     restore" stops at the create of a set that exists (left by a run
//     with another state directory) before touching it; the sets it did
//     create are destroyed and the run starts over, reading the headers.
//     Sets the plan does not name are left to the next run.
//   - Shared mode touches only REYES-* chains, reyes4-/reyes6- sets and
//     the plan's hooks: one jump at the top of each built-in chain it
//     names (FamilyPlan.Hooks; INPUT -> REYES-INPUT when empty), kept
//     there idempotently; a jump from a built-in chain the plan no longer
//     hooks (the baseline's OUTPUT and FORWARD, turned off) is removed in
//     the same restore that deletes its chain. Other rules (an admin's,
//     Docker's) survive Apply and Remove. Exclusive mode writes the whole
//     filter table.
//   - Lockout safety: Options.FailSafe is checked against the plan before
//     anything is loaded; a flag file (Options.DisableFile) stops Apply.
//
// The iptables backend (nft or legacy) follows the host's iptables
// program unless Options.Backend says otherwise: the multi-call binary it
// links to (xtables-nft-multi or xtables-legacy-multi, which is how
// iptables 1.8 installs it and how update-alternatives switches it), read
// without running a process, or else what "iptables --version" reports.
// The matching *-restore tools are used, always with --wait for the
// xtables lock. After a switch of backend
// (the record names the other one), reyes' jumps and chains are taken out
// of the previous backend once the new rules are in force in every family:
// until then both filter, and a packet passes only if both policies let it,
// which is the verdict of one of them.
//
// The state directory belongs to root: whoever can write it can make
// Apply trust a record (set hashes) that the kernel does not hold.
//
// Drift (Check) is read back from the rule-hash comment that render puts on
// every rule of reyes' chains (render.SavedChainHashes), from the jumps in
// the built-in chains, and from the set members: how a given iptables
// release prints a rule does not matter, and a rule added, removed, moved
// or replaced without its hash in a reyes chain is found.
//
// Source layout: apply.go (Options, Result, Apply), plancheck.go (what a
// plan must satisfy), family.go (one family's apply: read, prepare,
// record), sets.go (the two slots, fill and swap), rules.go (the rules and
// the hooks), undo.go (putting a family back), conntrack.go, check.go
// (drift), state.go (the record and its prepared form), lock.go,
// kernel.go (what is read from the kernel), backend.go (nft or legacy),
// remove.go (Remove), exec.go (the Runner).
//
// All kernel access goes through the Runner interface: ExecRunner runs
// the real tools (optionally inside a network namespace); package
// applytest has a stateful fake for unit tests.
//
// What it does not do: decide policy (package render does), parse or
// compare every rule in the kernel, or manage tables other than filter.
// The invariant assumes reyes' chains and sets change only through this
// package: an admin who edits them by hand is drift (see Check).
package apply
