package platform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/valyala/fasthttp"
)

// emptyPayloadHash is the hex SHA-256 of an empty body, which most control
// calls and many invocations carry.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Signer re-signs Lambda requests with sequoia's own credentials.
//
// A client's SigV4 signature covers the Host header and the time, so it
// cannot survive a proxy: sequoia verifies nothing of it, strips it, and
// signs the request again for the platform's host. One Signer is shared by
// every request; its credentials come from a cache that refreshes them
// before they expire.
//
// Hot-path cost: one SHA-256 of the body (none for an empty one), one
// credentials-cache load, and the signer's own canonicalisation over a
// small net/http request built from the headers that are signed.
type Signer struct {
	signer *v4.Signer
	creds  aws.CredentialsProvider
	region string
	host   string // the platform's host, as sent in Host
	now    func() time.Time
}

// SignerConfig configures NewLambdaSigner.
type SignerConfig struct {
	// Region is the AWS region; empty means the standard chain's
	// (AWS_REGION, the shared config's profile).
	Region string
	// Host is the Host the signed requests are sent to.
	Host string
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// NewLambdaSigner loads credentials from the standard AWS chain
// (environment, shared config and credentials files, web identity for
// Kubernetes service accounts, container and instance roles) and checks
// that they can be retrieved now, so that a proxy without credentials fails
// at start-up rather than on its first request.
func NewLambdaSigner(ctx context.Context, cfg SignerConfig) (*Signer, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("lambda: loading AWS configuration: %w", err)
	}
	if ac.Region == "" {
		return nil, errors.New("lambda: no AWS region: set SEQUOIA_LAMBDA_REGION (or AWS_REGION)")
	}
	if ac.Credentials == nil {
		return nil, errMissingCredentials(nil)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := ac.Credentials.Retrieve(rctx)
	if err != nil || !c.HasKeys() {
		return nil, errMissingCredentials(err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Signer{
		signer: v4.NewSigner(),
		creds:  ac.Credentials,
		region: ac.Region,
		host:   cfg.Host,
		now:    now,
	}, nil
}

func errMissingCredentials(cause error) error {
	msg := "lambda: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
		"or AWS_PROFILE with a shared credentials file, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN " +
		"(Kubernetes service account), or run where an instance or container role is available"
	if cause != nil {
		return fmt.Errorf("%s: %w", msg, cause)
	}
	return errors.New(msg)
}

// Region returns the region requests are signed for.
func (s *Signer) Region() string { return s.region }

// clientAuth are the headers of the client's own signature: removed before
// signing again.
var clientAuth = [...]string{
	fasthttp.HeaderAuthorization,
	"X-Amz-Date",
	"X-Amz-Security-Token",
	"X-Amz-Content-Sha256",
}

// Sign strips the client's signature from req and signs it with sequoia's
// credentials. Headers sequoia adds or reads itself (Via, X-Sequoia-*) and
// those the signer always ignores are left unsigned.
func (s *Signer) Sign(ctx context.Context, req *fasthttp.Request) error {
	for _, h := range clientAuth {
		req.Header.Del(h)
	}
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("lambda: credentials: %w", err)
	}
	hr := s.httpRequest(req)
	if err := s.signer.SignHTTP(ctx, creds, hr, payloadHash(req.Body()), "lambda", s.region, s.now()); err != nil {
		return fmt.Errorf("lambda: signing: %w", err)
	}
	req.Header.Set(fasthttp.HeaderAuthorization, hr.Header.Get(fasthttp.HeaderAuthorization))
	req.Header.Set("X-Amz-Date", hr.Header.Get("X-Amz-Date"))
	if tok := hr.Header.Get("X-Amz-Security-Token"); tok != "" {
		req.Header.Set("X-Amz-Security-Token", tok)
	}
	return nil
}

// httpRequest is the net/http view of req the signer needs: method, the
// path and query as they go on the wire, Host, and the headers to sign.
func (s *Signer) httpRequest(req *fasthttp.Request) *http.Request {
	raw := string(req.URI().PathOriginal())
	u := &url.URL{Scheme: "https", Host: s.host, RawPath: raw, RawQuery: string(req.URI().QueryString())}
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path = p
	} else {
		u.Path = raw
	}
	h := make(http.Header, 8)
	for k, v := range req.Header.All() {
		if skipSigning(k) {
			continue
		}
		key := http.CanonicalHeaderKey(string(k))
		h[key] = append(h[key], string(v))
	}
	return &http.Request{
		Method:        string(req.Header.Method()),
		URL:           u,
		Host:          s.host,
		Header:        h,
		ContentLength: int64(len(req.Body())),
	}
}

// skipSigning reports headers left out of the signature: the ones the
// Host and length are taken from elsewhere, sequoia's own, and Via.
func skipSigning(k []byte) bool {
	switch {
	case len(k) == 0:
		return true
	case strings.EqualFold(string(k), fasthttp.HeaderHost),
		strings.EqualFold(string(k), fasthttp.HeaderContentLength),
		strings.EqualFold(string(k), fasthttp.HeaderConnection),
		strings.EqualFold(string(k), "Via"):
		return true
	case len(k) >= 10 && strings.EqualFold(string(k[:10]), "X-Sequoia-"):
		return true
	}
	return false
}

// payloadHash is the hex SHA-256 of body.
func payloadHash(body []byte) string {
	if len(body) == 0 {
		return emptyPayloadHash
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
