package ctl_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/reyes-fw/reyes/internal/ctl"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// Publish the bundled example estate to a file, as reyes-leader would, and
// ask reyesctl explain whether a host in another VPC reaches the api
// server on port 443.
func ExampleRun() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "reyesctl-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// The leader's side: a key, the ruleset, one signed object.
	now := time.Now()
	secret, public, err := sign.GenerateKey("example leader", "", now)
	if err != nil {
		panic(err)
	}
	signer, err := sign.ParseSigner(secret)
	if err != nil {
		panic(err)
	}
	inv, err := sgsource.ReadDir(ctx, "../../examples/quickstart/inventory")
	if err != nil {
		panic(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: now, Scope: "example"})
	if err != nil {
		panic(err)
	}
	payload, err := ruleset.Encode(rs)
	if err != nil {
		panic(err)
	}
	object, err := sign.Seal(payload, signer, now)
	if err != nil {
		panic(err)
	}
	store, key := filepath.Join(dir, "ruleset.obj"), filepath.Join(dir, "leader.pub")
	if err := os.WriteFile(store, object, 0o644); err != nil {
		panic(err)
	}
	if err := os.WriteFile(key, public, 0o644); err != nil {
		panic(err)
	}

	// The question, about the host whose two interfaces hold 10.20.1.10
	// and 10.20.1.11 (each gets its own chain, as on the host).
	err = ctl.Run(ctx, []string{"explain", "--store", store, "--trusted-key", key,
		"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443",
		"--addrs", "10.20.1.10,10.20.1.11"}, os.Stdout, os.Stderr)
	fmt.Println("exit status:", ctl.ExitCode(err))
	// Output:
	// host:    eni-f105372af0061d156 (10.20.1.11,10.20.1.12,2400:6500:60ec:9c00::11) groups sg-41c9bbb04cf721a80,sg-b238c182ba23a5210
	// host:    eni-f9d642e9aab729078 (10.20.1.10) groups sg-b238c182ba23a5210
	// own VPC: 10.20.0.0/16,2400:6500:60ec:9c00::/56
	// packet:  tcp 10.30.0.5 -> 10.20.1.10 port 443
	// policy:  mode vpc, table shared, foreign 10.0.0.0/8
	// verdict: allow
	// rule:    -A REYES-eni-f9d642e9aab729078 -p tcp -m tcp --dport 443 -m comment --comment "sg-b238c182ba23a5210 (api): tcp/443 from 0.0.0.0/0" -g REYES-ALLOW
	// where:   rule 4 of chain REYES-eni-f9d642e9aab729078, as the host loads it (iptables -S REYES-eni-f9d642e9aab729078 4)
	// comment: sg-b238c182ba23a5210 (api): tcp/443 from 0.0.0.0/0
	// path:    REYES-INPUT -> REYES-FILTER -> REYES-eni-f9d642e9aab729078 -> REYES-ALLOW
	// note:    in shared mode the host's own INPUT rules still see this packet
	// exit status: 0
}
