package platform

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/valyala/fasthttp"
)

// captured is one request as the AWS SDK put it on the wire.
type captured struct {
	method, uri, host string
	header            http.Header
	body              []byte
}

// sdkRequest has the real Lambda SDK sign an Invoke and returns it as sent.
func sdkRequest(t *testing.T, name string, qualifier *string, payload []byte) captured {
	t.Helper()
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Method, r.RequestURI, r.Host, r.Header.Clone(), b}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c := lambda.New(lambda.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session-token"),
	})
	_, err := c.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(name), Qualifier: qualifier, Payload: payload,
		InvocationType: types.InvocationTypeRequestResponse, LogType: types.LogTypeTail,
	})
	if err != nil {
		t.Fatal(err)
	}
	return <-got
}

// TestSignMatchesSDK: what sequoia signs for a request is exactly what the
// SDK signed for it, given the same credentials, time and headers. The
// client's own signature is removed first, and the host is sequoia's.
func TestSignMatchesSDK(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fn        string
		qualifier *string
		payload   []byte
	}{
		{"plain", "hello", nil, []byte(`{"a":1}`)},
		{"empty body", "hello", nil, nil},
		{"qualifier", "hello", aws.String("$LATEST"), []byte(`{}`)},
		{"arn", "arn:aws:lambda:eu-west-1:123456789012:function:hello:prod", nil, []byte(`[1,2]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sdkRequest(t, tc.fn, tc.qualifier, tc.payload)
			auth := c.header.Get("Authorization")
			_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
			if !ok {
				t.Fatalf("no SignedHeaders in %q", auth)
			}
			signedList, _, _ = strings.Cut(signedList, ",")
			signed := map[string]bool{}
			for _, h := range strings.Split(signedList, ";") {
				signed[h] = true
			}
			when, err := time.Parse("20060102T150405Z", c.header.Get("X-Amz-Date"))
			if err != nil {
				t.Fatal(err)
			}

			var req fasthttp.Request
			req.Header.SetMethod(c.method)
			req.SetRequestURI(c.uri)
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=CLIENT/x, SignedHeaders=host, Signature=00")
			req.Header.Set("X-Amz-Date", "19990101T000000Z")
			for k, vs := range c.header {
				lk := strings.ToLower(k)
				if !signed[lk] || lk == "x-amz-date" || lk == "x-amz-security-token" || lk == "content-length" {
					continue
				}
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			req.Header.Set("X-Sequoia-Chain-Id", "c-1") // sequoia's own: never signed
			req.SetBody(c.body)

			s := &Signer{
				signer: v4.NewSigner(),
				creds:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session-token"),
				region: "eu-west-1", host: c.host,
				now: func() time.Time { return when },
			}
			if err := s.Sign(context.Background(), &req); err != nil {
				t.Fatal(err)
			}
			if got := string(req.Header.Peek("Authorization")); got != auth {
				t.Errorf("Authorization\n got  %s\n want %s", got, auth)
			}
			if got := string(req.Header.Peek("X-Amz-Security-Token")); got != "session-token" {
				t.Errorf("X-Amz-Security-Token = %q", got)
			}
			if n := bytes.Count([]byte(req.Header.String()), []byte("Authorization:")); n != 1 {
				t.Errorf("%d Authorization headers", n)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	s := &Signer{
		signer: v4.NewSigner(),
		creds:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		region: "eu-west-1", host: "lambda.eu-west-1.amazonaws.com", now: time.Now,
	}
	for _, size := range []int{0, 1 << 10, 256 << 10} {
		b.Run(strings.ReplaceAll(http.StatusText(200)+"-"+itoa(size), "OK-", "body"), func(b *testing.B) {
			var req fasthttp.Request
			req.Header.SetMethod("POST")
			req.SetRequestURI("/2015-03-31/functions/hello/invocations?Qualifier=prod")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
			req.Header.Set("Amz-Sdk-Invocation-Id", "0f9c6f3e-8f0e-4c43-a7a3-1d2d7a3c6b0e")
			req.SetBody(bytes.Repeat([]byte("x"), size))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Sign(context.Background(), &req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
