package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Tokens minted by SimpleJWT with RS256 and a key pair made here are
// accepted through the configuration (SIMPLE_JWT_ALGORITHM and
// SIMPLE_JWT_VERIFYING_KEY); an HS256 token signed with SECRET_KEY is not.
func TestRS256TokensFromSimpleJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	private := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	public := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})

	db := testenv.Postgres(t)
	listener := db.CreateUser(t, "l@example.com", "", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")
	rs := testenv.MintTokens(t, db.DSN, []string{"SECRET_KEY=" + secret, "SIMPLE_JWT_ALGORITHM=RS256",
		"SIMPLE_JWT_SIGNING_KEY=" + string(private), "SIMPLE_JWT_VERIFYING_KEY=" + string(public)}, talker)[talker].Access
	hs := testenv.MintTokens(t, db.DSN, []string{"SECRET_KEY=" + secret}, talker)[talker].Access

	t.Setenv("SIMPLE_JWT_ALGORITHM", "RS256")
	t.Setenv("SIMPLE_JWT_VERIFYING_KEY", string(public))
	addr := start(t, testConfig(t, db.DSN)).addr
	dialChat(t, addr, conv, rs) // the RS256 token is accepted
	url := "ws://" + addr + "/ws/chat/" + itoa(conv) + "/?token="
	_, resp, err := websocket.DefaultDialer.Dial(url+hs, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("HS256 token under RS256: %v %v, want 403", err, resp)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
