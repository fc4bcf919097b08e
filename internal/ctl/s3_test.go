package ctl

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
)

// moto starts moto_server on a free loopback port (it skips the test when
// moto_server is not installed) and returns its base URL.
func moto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server not on PATH (pip install 'moto[server]'); skipping the S3 test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var log bytes.Buffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the shim starts children
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting moto_server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("moto_server exited:\n%s", log.String())
		default:
		}
		if resp, err := http.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			return url
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("moto_server not answering on %s after 30 s:\n%s", url, log.String())
		}
	}
}

// TestS3: the object-reading commands fetch s3://bucket/key from an
// S3-compatible server named by AWS_ENDPOINT_URL_S3, with --s3-path-style.
func TestS3(t *testing.T) {
	f := newFixture(t)
	endpoint := moto(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, endpoint+"/reyes-ctl", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("creating the bucket: %s", resp.Status)
	}
	st, err := reyes.OpenStore(t.Context(), "s3://reyes-ctl/rulesets/quickstart", reyes.StoreOptions{PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), f.goodBytes); err != nil {
		t.Fatal(err)
	}

	const url = "s3://reyes-ctl/rulesets/quickstart"
	now := time.Now()
	for _, tc := range []runCase{
		{name: "verify", args: []string{"verify", "--s3-path-style", "--trusted-key", f.public, url}, out: []string{"object: " + url, "OK"}},
		{name: "inspect", args: []string{"inspect", "--s3-path-style", url}, out: []string{"UNVERIFIED", "sg-b238c182ba23a5210 api"}},
		{name: "explain", args: []string{"explain", "--s3-path-style", "--store", url, "--trusted-key", f.public,
			"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, out: []string{"verdict: allow"}},
		{name: "missing key", args: []string{"verify", "--s3-path-style", "--trusted-key", f.public, url + "-nope"},
			code: ExitFailure, errIs: reyes.ErrNotFound},
		{name: "over the cap", args: []string{"verify", "--s3-path-style", "--max-size", "1000", "--trusted-key", f.public, url},
			code: ExitFailure, errIs: reyes.ErrTooLarge},
		{name: "bad url", args: []string{"verify", "--trusted-key", f.public, "s3://bucket-only"}, code: ExitFailure, errHas: "s3://bucket/key"},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}
