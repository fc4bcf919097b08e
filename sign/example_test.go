package sign_test

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/reyes-fw/reyes/sign"
)

func Example() {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	// What "reyesctl keygen" does: the secret key stays with the leaders,
	// the public key goes to every follower.
	secret, public, err := sign.GenerateKey("Reyes Leader", "reyes@example.org", now)
	if err != nil {
		panic(err)
	}
	signer, err := sign.ParseSigner(secret)
	if err != nil {
		panic(err)
	}
	trusted, err := sign.ParseKeyring(public)
	if err != nil {
		panic(err)
	}

	// Leader: one object per publish.
	object, err := sign.Seal([]byte(`{"serial":42}`), signer, now)
	if err != nil {
		panic(err)
	}

	// Follower: the verified payload is the only thing to parse.
	payload, err := sign.Open(bytes.NewReader(object), trusted, now.Add(time.Minute))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", payload)

	// One flipped bit and the object is refused.
	object[len(object)-2] ^= 1
	_, err = sign.Open(bytes.NewReader(object), trusted, now)
	fmt.Println(errors.Is(err, sign.ErrBadSignature))
	// Output:
	// {"serial":42}
	// true
}
