package dashboard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
)

// hstsHeader tells browsers to use HTTPS only for this host for a year. includeSubDomains is
// left out: a control host often shares its domain with devices that speak plain HTTP.
const hstsHeader = "max-age=31536000"

// loadTLS loads the dashboard's certificate and key. The key file must be readable by its
// owner only; a wider mode is refused with the command that fixes it.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate file and a key file")
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("TLS key %s has mode %04o; a private key must be readable by its owner only: chmod 600 %s", keyFile, perm, keyFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
