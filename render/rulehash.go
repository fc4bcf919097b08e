package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Rule hashes (the idea of Calico's generictables.RuleHashes): every rule
// that IptablesRestore writes into one of reyes' chains carries, as its
// last match, a comment "reyes:<hash>", where hash is a short hash of what
// the rule does (its matches without comments, and its target) chained
// with the hash of the rule before it in the chain (the first rule chains
// with the chain's name). Identical rules at different places get
// different hashes, and a chain's list of hashes says which rules it holds
// in which order.
//
// Drift detection reads these comments back from iptables-save
// (SavedChainHashes) instead of comparing the rules as text: how a given
// iptables release prints a match ("-p tcp -m tcp", protocol names,
// default options such as --log-level 4, the order of flags) does not
// matter, only that it keeps comments, which every release does.

// RuleHashPrefix starts the comment that carries a rule's hash.
const RuleHashPrefix = "reyes:"

// ruleHashLen is the length of a rule hash in hex digits (64 bits).
const ruleHashLen = 16

// ruleHash is the hash of a rule with match (comments included, as
// matchArgs returns it) and target, after the rule whose hash is prev.
func ruleHash(prev string, match, target []string) string {
	h := sha256.New()
	h.Write([]byte(prev))
	for _, a := range withoutComments(match) {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	h.Write([]byte{0, 0})
	for _, a := range target {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	return hex.EncodeToString(h.Sum(nil))[:ruleHashLen]
}

// withoutComments drops the "-m comment --comment X" matches from args: a
// comment names a rule, it does not change what the rule does.
func withoutComments(args []string) []string {
	out := args[:0:0]
	for i := 0; i < len(args); i++ {
		if i+3 < len(args) && args[i] == "-m" && args[i+1] == "comment" && args[i+2] == "--comment" {
			i += 3
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// ChainHashes returns, for every chain of the plan, a digest of the
// hashes of its rules in order (the same for two chains exactly when they
// hold the same rules in the same order). SavedChainHashes computes the
// same digest from what the kernel holds.
func (fp *FamilyPlan) ChainHashes() map[string]string {
	out := make(map[string]string, len(fp.Chains))
	for _, c := range fp.Chains {
		prev := c.Name
		hashes := make([]string, 0, len(c.Rules))
		for _, r := range c.Rules {
			prev = ruleHash(prev, r.matchArgs(fp.Family), r.targetArgs(fp.Family))
			hashes = append(hashes, prev)
		}
		out[c.Name] = chainDigest(hashes)
	}
	return out
}

// unhashed stands, in a chain's list, for a rule that carries no rule hash:
// a rule reyes did not write.
const unhashed = "-"

// SavedChainHashes reads iptables-save (or restore) text and returns, for
// every one of reyes' chains it declares or fills (ChainPrefix), the digest
// of the rule hashes its rules carry, in order, as ChainHashes computes it
// for a plan. A rule without a hash counts as a rule reyes did not write,
// so its chain's digest matches no plan's.
func SavedChainHashes(text []byte) map[string]string {
	lists := map[string][]string{}
	for line := range bytes.Lines(text) {
		l := strings.TrimRight(string(line), "\r\n")
		if decl, ok := strings.CutPrefix(l, ":"+ChainPrefix); ok {
			name := ChainPrefix + strings.Fields(decl + " ")[0]
			if _, seen := lists[name]; !seen {
				lists[name] = []string{}
			}
			continue
		}
		rest, ok := strings.CutPrefix(l, "-A "+ChainPrefix)
		if !ok {
			continue
		}
		name := ChainPrefix + strings.Fields(rest + " ")[0]
		lists[name] = append(lists[name], savedRuleHash(l))
	}
	out := make(map[string]string, len(lists))
	for c, hs := range lists {
		out[c] = chainDigest(hs)
	}
	return out
}

// savedRuleHash finds the rule hash in a saved rule: the last comment
// match, with or without quotes. A comment from AWS text cannot forge it:
// reyes writes the hash after every other comment, so an earlier one that
// reads like a hash comment is not the last.
func savedRuleHash(l string) string {
	const opt = " -m comment --comment "
	i := strings.LastIndex(l, opt)
	if i < 0 {
		return unhashed
	}
	v := l[i+len(opt):]
	quoted := strings.HasPrefix(v, `"`)
	v = strings.TrimPrefix(v, `"`)
	v, ok := strings.CutPrefix(v, RuleHashPrefix)
	if !ok || len(v) < ruleHashLen {
		return unhashed
	}
	h, tail := v[:ruleHashLen], v[ruleHashLen:]
	if quoted {
		t, ok := strings.CutPrefix(tail, `"`)
		if !ok {
			return unhashed
		}
		tail = t
	}
	if tail != "" && tail[0] != ' ' {
		return unhashed
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return unhashed
		}
	}
	return h
}

// chainDigest is the digest of a chain's list of rule hashes.
func chainDigest(hashes []string) string {
	sum := sha256.Sum256([]byte(strings.Join(hashes, ",")))
	return hex.EncodeToString(sum[:8])
}

// StripRuleHashes removes the rule-hash comments (quoted or not) from
// restore or save text, or one rule line: what remains is the rules as they
// read without reyes' bookkeeping, for people and for comparisons with
// Rule.String.
func StripRuleHashes(text string) string {
	const opt = " -m comment --comment "
	var b strings.Builder
	for {
		i := strings.Index(text, opt)
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		v := text[i+len(opt):]
		n := len(RuleHashPrefix) + ruleHashLen
		if strings.HasPrefix(v, `"`) {
			n += 2
		}
		if len(v) >= n && hashComment(v[:n]) && (len(v) == n || v[n] == ' ' || v[n] == '\n') {
			b.WriteString(text[:i])
			text = v[n:]
			continue
		}
		b.WriteString(text[:i+len(opt)])
		text = v
	}
}

// hashComment reports whether v is a rule-hash comment's value, in quotes
// or not.
func hashComment(v string) bool {
	if q, ok := strings.CutPrefix(v, `"`); ok {
		v, ok = strings.CutSuffix(q, `"`)
		if !ok {
			return false
		}
	}
	h, ok := strings.CutPrefix(v, RuleHashPrefix)
	if !ok || len(h) != ruleHashLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
