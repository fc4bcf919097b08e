package reyes

import (
	"log/slog"

	"github.com/reyes-fw/reyes/ruleset"
)

// FindingCounts counts the findings of a ruleset by kind
// (ruleset.FindingUnreadAccount, FindingStaleReference, FindingClientIP).
type FindingCounts map[string]int

// countFindings counts findings by kind; nil for none.
func countFindings(fs []ruleset.Finding) FindingCounts {
	if len(fs) == 0 {
		return nil
	}
	c := FindingCounts{}
	for _, f := range fs {
		c[f.Kind]++
	}
	return c
}

// logFindings logs one warning per finding of the ruleset (what the mirror
// cannot reproduce as AWS does, never silently approximated) and the
// accounts referred to that were not read.
func logFindings(log *slog.Logger, fs []ruleset.Finding) {
	unread := map[string]int{}
	for _, f := range fs {
		log.Warn("security group rule not mirrored as AWS applies it",
			"kind", f.Kind, "group", f.Group, "ref", f.Ref, "account", f.Account, "detail", f.Detail)
		if f.Kind == ruleset.FindingUnreadAccount {
			unread[f.Account]++
		}
	}
	for acct, n := range unread {
		log.Warn("rules refer to groups of an account that was not read; those references allow nothing (add --role-arn or --organization-role)",
			"account", acct, "references", n)
	}
}
