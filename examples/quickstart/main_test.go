package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"*filter",
		":REYES-INPUT - [0:0]",
		"-A REYES-FILTER -p tcp -m tcp --dport 8443 -m set --match-set reyes4-sg-3afd97af72adefa56 src",
		"10.30.0.5 -> 10.20.1.10 proto 6 port 22 ipsec=false: drop",
		"10.20.1.50 -> 10.20.1.10 proto 6 port 8443 ipsec=false: pass (own VPC)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestQuickstartRejectsUnknownHost(t *testing.T) {
	err := run(context.Background(), []string{"-host", "192.0.2.1"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no interface") {
		t.Fatalf("run: %v", err)
	}
}
