// Package render turns a ruleset and a host's view of itself into a [Plan]:
// the exact text that `ipset restore` and `iptables-restore` (IPv4 and IPv6)
// will load, and a structured form of the same rules.
//
// Render is pure: no exec, no clock, no environment. The same ruleset, host
// and options always give byte-identical output, so users can golden-test
// their policy, and [Decide] tells what the rendered policy does with one
// packet and which rule decides, without a kernel.
//
// Chain layout (each family):
//
//	INPUT         -j REYES-INPUT   (one jump at the top; shared mode)
//	REYES-INPUT   lo, ESTABLISHED/RELATED, fail-safe sources: allowed
//	              vpc mode:   own VPC CIDRs return, foreign ranges -g REYES-FILTER
//	              ipsec mode: -m policy --dir in --pol ipsec -g REYES-FILTER
//	REYES-FILTER  the host's security group rules (or, with several ENIs,
//	              -d <ENI address> -g REYES-eni-<id> with the rules per ENI),
//	              then -g REYES-DROP
//	REYES-ALLOW   optional LOG, then RETURN (shared) or ACCEPT (exclusive)
//	REYES-DROP    optional LOG, then DROP
//
// Verdict chains are entered with goto (-g), so that in shared mode an allowed
// packet returns to the host's own INPUT rules, which still apply: reyes adds a
// filter, it never overrides the administrator's. In exclusive mode reyes owns
// the whole filter table and allowed packets are accepted.
//
// Every rule in reyes' chains ends its matches with a rule-hash comment,
// -m comment --comment "reyes:<16 hex digits>": a hash of what the rule
// does chained with the rule before it (Calico's RuleHashes idea).
// [FamilyPlan.ChainHashes] and [SavedChainHashes] turn a plan and an
// iptables-save listing into the same per-chain digests, so that drift
// detection compares only reyes' own hashes, never how an iptables release
// prints a rule. [StripRuleHashes] removes them for people.
//
// Set and chain names are derived from AWS IDs only (validated by package
// ruleset), never from names; anything else from AWS that reaches a comment is
// sanitised. Render does not touch the kernel: package apply loads a Plan.
package render
