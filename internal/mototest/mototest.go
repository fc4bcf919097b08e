// Package mototest starts moto_server, a local AWS endpoint (EC2, S3, ...),
// for integration tests: on a free port of 127.0.0.1, or inside a network
// namespace a test made. It is test support; nothing outside tests uses it.
package mototest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
)

// Options say where and how moto_server runs.
type Options struct {
	// NS, if not nil, runs the server inside this namespace on port 5000
	// of its loopback; otherwise it runs on a free port of 127.0.0.1.
	NS *netns.NS
	// NeedCLI skips the test when the AWS CLI (aws) is absent too, for
	// tests that seed or dump the endpoint with it.
	NeedCLI bool
	// Why completes the skip message: "skipping <Why>".
	Why string
}

// Start starts moto_server and returns its URL. The test is skipped, saying
// so, when moto_server (or, with NeedCLI, aws) is not on PATH; the server
// is killed, with its whole process group, when the test ends, and its
// output is logged if the test failed.
func Start(t testing.TB, o Options) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skipf("moto_server is not on PATH (pip install 'moto[server]'): skipping %s", o.Why)
	}
	if _, err := exec.LookPath("aws"); o.NeedCLI && err != nil {
		t.Skipf("the AWS CLI (aws) is not on PATH: skipping %s", o.Why)
	}
	port := 5000 // a fresh namespace: nothing else listens there
	if o.NS == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	args := []string{bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)}
	if o.NS != nil {
		args = append([]string{"ip", "netns", "exec", o.NS.Name}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	// Loading moto's catalogue of public AMIs makes the first EC2 request
	// of each region take seconds; no test needs it.
	cmd.Env = append(os.Environ(), "MOTO_EC2_LOAD_DEFAULT_AMIS=false")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting moto_server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("moto_server output:\n%s", logs.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("moto_server exited: %v\n%s", err, logs.String())
		default:
		}
		err := dial()
		if o.NS != nil {
			err = o.NS.Do(dial)
		}
		if err == nil {
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			where := ""
			if o.NS != nil {
				where = " in " + o.NS.Name
			}
			t.Fatalf("moto_server did not listen on %s%s within 30 s: %v\n%s", addr, where, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
