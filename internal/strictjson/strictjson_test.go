package strictjson_test

import (
	"errors"
	"io"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/reyes-fw/reyes/internal/strictjson"
)

func TestExplain(t *testing.T) {
	type item struct {
		ID   string `json:"id"`
		Port int32  `json:"port"`
	}
	type doc struct {
		Items []item `json:"items"`
	}
	tests := []struct {
		name, in, want string
	}{
		{"unknown field", `{"items":[{"id":"a","x":1}]}`, `/items/0/x: unknown field "x"`},
		{"duplicate key", `{"items":[{"id":"a","id":"b"}]}`, `/items/0/id: duplicate key "id"`},
		{"wrong type", `{"items":[{"port":"80"}]}`, `/items/0/port: want an integer, got a string`},
		{"out of range", `{"items":[{"port":4294967296}]}`, `/items/0/port: want an integer, got a number 4294967296: value out of range`},
		{"array for an object", `{"items":[[]]}`, `/items/0: want an object, got an array`},
		{"syntax", `{"items":[}`, `/items/0: invalid JSON at byte 10: invalid character '}' at start of value`},
		{"truncated", `{"items":[`, `/items: invalid JSON at byte 10: unexpected end of input`},
		{"trailing data", `{} {}`, `invalid JSON at byte 3: invalid character '{' after top-level value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := json.Unmarshal([]byte(tt.in), &d, json.RejectUnknownMembers(true))
			if err == nil {
				t.Fatal("Unmarshal accepted it")
			}
			got := strictjson.Explain(err)
			var se *strictjson.Error
			if !errors.As(got, &se) {
				t.Fatalf("Explain(%v) = %v, not an *Error", err, got)
			}
			if got.Error() != tt.want {
				t.Errorf("Explain(%v)\n got %s\nwant %s", err, got, tt.want)
			}
		})
	}
	t.Run("other errors unchanged", func(t *testing.T) {
		boom := errors.New("boom")
		if got := strictjson.Explain(boom); got != boom {
			t.Errorf("Explain(boom) = %v", got)
		}
		var se *strictjson.Error
		if got := strictjson.Explain(io.ErrUnexpectedEOF); !errors.As(got, &se) {
			t.Errorf("Explain(io.ErrUnexpectedEOF) = %v", got)
		}
	})
}
