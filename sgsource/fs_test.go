package sgsource_test

import (
	"context"
	"os"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/reyes-fw/reyes/sgsource"
)

func TestReadFSMatchesReadDir(t *testing.T) {
	const dir = "../examples/quickstart/inventory"
	want, err := sgsource.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sgsource.ReadFS(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("ReadFS and ReadDir disagree on the sample")
	}
}

func TestReadFSRejectsEmpty(t *testing.T) {
	_, err := sgsource.ReadFS(context.Background(), fstest.MapFS{"README": {Data: []byte("x")}})
	if err == nil {
		t.Fatal("an inventory without regions was accepted")
	}
}
