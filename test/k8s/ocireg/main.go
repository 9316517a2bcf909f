// ocireg serves go-containerregistry's registry (the one crane serves) with the OCI 1.1
// referrers API on, over TLS with one basic-auth user: the tests' registry *with* the referrers
// API, next to the distribution registry 2.8 without it. Test infrastructure only.
//
//	ocireg --address 127.0.0.1:0 --tls-cert cert.pem --tls-key key.pem --user u --password-file f
//
// It prints "listening on HOST:PORT" once it accepts connections.
package main

import (
	"crypto/subtle"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "address to listen on")
	cert := flag.String("tls-cert", "", "PEM certificate (no TLS when empty)")
	key := flag.String("tls-key", "", "PEM private key")
	user := flag.String("user", "", "the one basic-auth user (no auth when empty)")
	passwordFile := flag.String("password-file", "", "file holding the user's password")
	flag.Parse()

	var password string
	if *user != "" {
		raw, err := os.ReadFile(*passwordFile)
		if err != nil {
			log.Fatalf("reading --password-file: %v", err)
		}
		password = strings.TrimSpace(string(raw))
	}
	handler := registry.New(registry.WithReferrersSupport(true))
	if *user != "" {
		inner := handler
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(*user)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="ocireg"`)
				w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	if *cert != "" {
		err = server.ServeTLS(listener, *cert, *key)
	} else {
		err = server.Serve(listener)
	}
	log.Fatal(err)
}
