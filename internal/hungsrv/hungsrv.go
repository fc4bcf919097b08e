// Package hungsrv is a test HTTP server that accepts connections and never
// answers: the peer that every bounded wait in reyes (EC2, S3, IMDS) is
// tested against.
package hungsrv

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// URL starts a server on 127.0.0.1 that accepts every request and never
// answers it, and returns its URL. The handlers are released and the
// server closed when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(release) })
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}
