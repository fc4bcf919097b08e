// Package policy_test is "test your policy in CI": it loads an inventory
// (the AWS CLI JSON of your security groups, interfaces and VPCs), builds
// the ruleset exactly as the leader does, renders it for named hosts exactly
// as the follower does, and asserts what render.Decide says about packets
// that must get through and packets that must not.
//
// Copy this file into your repository, point inventoryDir at your own dump
// and rewrite hosts and the table of packets. See README.md.
package policy_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// inventoryDir holds one subdirectory per region, each with the output of
// aws ec2 describe-security-groups, describe-network-interfaces and
// describe-vpcs (and get-managed-prefix-list-entries for every prefix list a
// rule refers to). Here: the example estate of the quickstart.
const inventoryDir = "../quickstart/inventory"

// exclude lists the groups (names or IDs) the leader is told to exclude
// (exclude_group): the group that lets VPN traffic in wholesale. Keep it
// the same as the leader's configuration.
var exclude = []string{}

// hosts names the hosts the table talks about: by instance ID (every
// interface of the instance in the inventory) or by addresses (every
// interface with one of them, for ENIs without an instance: RDS, load
// balancers, appliances).
var hosts = map[string]hostRef{
	"api":     {instance: "i-1ffef13a7effb87a6"},
	"bastion": {addrs: []string{"10.30.0.5"}},
	"db":      {addrs: []string{"10.20.1.60"}},
}

type hostRef struct {
	instance string
	addrs    []string
}

// Protocol numbers, for the table.
const (
	icmp = 1
	tcp  = 6
	udp  = 17
	esp  = 50
)

// The three outcomes of render.Decide.
const (
	allow = render.Allowed // a security group rule allows it
	drop  = render.Dropped // reyes drops it: no security group allows it
	pass  = render.Pass    // not reyes' business (own VPC, not a foreign range, not IPsec)
)

func TestPolicy(t *testing.T) {
	rs := buildRuleset(t)
	for _, tc := range []struct {
		name  string
		host  string
		mode  render.Mode // the followers' mode (render.ModeVPC is the default)
		src   string
		dst   string // an address of host
		proto int
		port  int // destination port; ICMP type for icmp
		ipsec bool
		want  render.Outcome
	}{
		// The api host, seen from the bastion's VPC over the VPN.
		{"https from the other VPC", "api", render.ModeVPC, "10.30.0.5", "10.20.1.10", tcp, 443, false, allow},
		{"ping from the other VPC", "api", render.ModeVPC, "10.30.0.5", "10.20.1.10", icmp, 8, false, allow},
		{"IPsec ESP from the other VPC", "api", render.ModeVPC, "10.30.0.5", "10.20.1.10", esp, 0, false, allow},
		{"ssh only from the office prefix list", "api", render.ModeVPC, "10.30.0.5", "10.20.1.10", tcp, 22, false, drop},
		{"8443 only from the load balancer", "api", render.ModeVPC, "10.30.0.5", "10.20.1.10", tcp, 8443, false, drop},
		{"postgres on the second interface only from api", "api", render.ModeVPC, "10.30.0.5", "10.20.1.11", tcp, 5432, false, drop},
		{"other foreign ranges are filtered too", "api", render.ModeVPC, "10.99.0.1", "10.20.1.10", tcp, 443, false, allow},
		{"own VPC is not reyes' business", "api", render.ModeVPC, "10.20.1.50", "10.20.1.10", tcp, 8443, false, pass},
		{"outside the foreign ranges is not reyes' business", "api", render.ModeVPC, "192.0.2.10", "10.20.1.10", tcp, 22, false, pass},

		// The bastion, seen from the api VPC.
		{"IKE from the api VPC", "bastion", render.ModeVPC, "10.20.1.10", "10.30.0.5", udp, 500, false, allow},
		{"no ssh from the api VPC", "bastion", render.ModeVPC, "10.20.1.10", "10.30.0.5", tcp, 22, false, drop},

		// The database, with followers in ipsec mode: only traffic that
		// arrived over IPsec is filtered.
		{"postgres from api over IPsec", "db", render.ModeIPsec, "10.20.1.10", "10.20.1.60", tcp, 5432, true, allow},
		{"postgres from the load balancer over IPsec", "db", render.ModeIPsec, "10.20.1.50", "10.20.1.60", tcp, 5432, true, drop},
		{"postgres from the bastion over IPsec", "db", render.ModeIPsec, "10.30.0.5", "10.20.1.60", tcp, 5432, true, drop},
		{"not over IPsec is not reyes' business", "db", render.ModeIPsec, "10.30.0.5", "10.20.1.60", tcp, 5432, false, pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := renderFor(t, rs, tc.host, render.Options{Mode: tc.mode})
			p := render.Packet{
				Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst),
				Protocol: tc.proto, IPsec: tc.ipsec,
			}
			if tc.proto == icmp {
				p.ICMPType, p.ICMPCode = tc.port, 0
			} else {
				p.Port = tc.port
			}
			v, err := render.Decide(plan, p)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tc.want {
				t.Errorf("%s -> %s proto %d port %d: %s, want %s\n  decided by %s %s",
					tc.src, tc.dst, tc.proto, tc.port, v.Action, tc.want, v.Chain, v.Rule)
			}
		})
	}
}

// TestNoSSHFromEverywhere is a policy rule over the whole estate rather
// than one host: no security group opens ssh to every address.
func TestNoSSHFromEverywhere(t *testing.T) {
	rs := buildRuleset(t)
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			covers22 := r.Protocol == ruleset.ProtoAll ||
				r.Protocol == ruleset.ProtoTCP && r.FromPort <= 22 && 22 <= r.ToPort
			if !covers22 {
				continue
			}
			for _, c := range r.CIDRs {
				if c.Bits() == 0 {
					t.Errorf("security group %s (%s) allows ssh from %s", g.ID, g.Name, c)
				}
			}
		}
	}
}

// buildRuleset builds the ruleset from inventoryDir as the leader does.
func buildRuleset(t *testing.T) *ruleset.Ruleset {
	t.Helper()
	inv, err := sgsource.ReadDir(context.Background(), inventoryDir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Now(), Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// renderFor finds the named host as the follower does (reyes.Identify with
// the host's addresses) and renders its plan.
func renderFor(t *testing.T, rs *ruleset.Ruleset, name string, opts render.Options) *render.Plan {
	t.Helper()
	ref, ok := hosts[name]
	if !ok {
		t.Fatalf("no host %q in hosts", name)
	}
	addrs, err := ref.addresses(t)
	if err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	host, _, err := reyes.Identify(context.Background(), rs, reyes.IdentityOptions{
		Addrs: addrs, DisableIMDS: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	plan, err := render.Render(rs, host, opts)
	if err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	return plan
}

// addresses returns the host's addresses: those given, or those of every
// interface of the instance in the inventory (the ruleset keeps no
// instance IDs).
func (h hostRef) addresses(t *testing.T) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range h.addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if h.instance == "" {
		return out, nil
	}
	inv, err := sgsource.ReadDir(context.Background(), inventoryDir)
	if err != nil {
		return nil, err
	}
	for _, r := range inv.Regions {
		for _, n := range r.NetworkInterfaces {
			if n.InstanceID == h.instance {
				out = append(out, n.Addresses...)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("instance %s has no interface in %s", h.instance, inventoryDir)
	}
	return out, nil
}
