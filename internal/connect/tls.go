package connect

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrConfig is wrapped by every error about connection settings.
var ErrConfig = errors.New("connect: bad connection settings")

// TLSFiles names the PEM files of a TLS client. All are optional: without
// CA the system's roots verify the server; Cert and Key, given together,
// are the client's certificate for servers that ask for one.
type TLSFiles struct {
	CA   string
	Cert string
	Key  string
}

// Any reports whether any file is named.
func (f TLSFiles) Any() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Validate reports a certificate without its key or a key without its
// certificate.
func (f TLSFiles) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%w: a client certificate needs both the certificate and the key file", ErrConfig)
	}
	return nil
}

// Config reads the files into a TLS client configuration (TLS 1.2 or
// later). The server name is left for the client library to fill from the
// address it dials.
func (f TLSFiles) Config() (*tls.Config, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, f.CA)
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
