package proxy

import "github.com/valyala/fasthttp"

// traceCarrier reads a request's trace headers for tracing.Start.
type traceCarrier struct{ h *fasthttp.RequestHeader }

func (c traceCarrier) Get(key string) string { return string(c.h.Peek(key)) }
