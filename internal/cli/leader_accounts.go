package cli

import (
	"fmt"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sgsource"
)

// accountConfig holds the leader's keys that choose which accounts it
// reads besides its own (README, "Many accounts").
type accountConfig struct {
	RoleARN          []string `koanf:"role_arn"`
	OrganizationRole string   `koanf:"organization_role"`
}

// accountOptions are the keys of accountConfig, for leaderOptions.
var accountOptions = []option{
	{"role_arn", kList, []string(nil), "also read the account of this IAM role, through STS AssumeRole (repeatable; with --source ec2)"},
	{"organization_role", kString, "", "also read every ACTIVE account of the AWS Organization through the role of this name in it (with --source ec2)"},
}

// validate checks the role ARNs and the role name without a call.
func (a *accountConfig) validate(source string) error {
	if source != "ec2" && (len(a.RoleARN) > 0 || a.OrganizationRole != "") {
		return fmt.Errorf("%w: role_arn and organization_role apply to source ec2 only", reyes.ErrConfig)
	}
	for _, r := range a.RoleARN {
		if _, err := sgsource.RoleAccount(r); err != nil {
			return fmt.Errorf("%w: role_arn: %w", reyes.ErrConfig, err)
		}
	}
	if a.OrganizationRole != "" {
		if err := sgsource.CheckRoleName(a.OrganizationRole); err != nil {
			return fmt.Errorf("%w: organization_role: %w", reyes.ErrConfig, err)
		}
	}
	return nil
}

// source returns src, or with roles or an organization the source that
// reads the leader's own account and those through src's regions.
func (a *accountConfig) source(src *sgsource.EC2) sgsource.Source {
	if len(a.RoleARN) == 0 && a.OrganizationRole == "" {
		return src
	}
	return &sgsource.MultiAccount{EC2: src, RoleARNs: a.RoleARN, OrganizationRole: a.OrganizationRole}
}
