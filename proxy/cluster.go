package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// Cluster is what the proxy needs of cluster mode (package cluster): the
// admission tickets that ride on the chain ids sequoia assigns, and the
// registration of a client-chosen id, awaited before the first answer so
// that the chain's next step finds it on any replica.
type Cluster interface {
	// SplitChainID splits a received id of the shape sequoia assigns
	// into the id and the ticket riding on it; ok false for any other id.
	SplitChainID(id []byte) (base, ticket []byte, ok bool)
	// Settle waits, briefly, until what admission sent about inv is
	// stored.
	Settle(inv *invocation.Invocation)
}

// chainIDValue appends to dst the X-Sequoia-Chain-Id of inv: the id, and
// the ticket riding on it if any.
func chainIDValue(dst []byte, inv *invocation.Invocation) []byte {
	dst = append(dst, inv.Chain...)
	if inv.ChainTicket != "" {
		dst = append(append(dst, '.'), inv.ChainTicket...)
	}
	return dst
}

// answerChainID sets the answer's X-Sequoia-Chain-Id: the id, with its
// ticket in a cluster (built in *buf).
func (p *Proxy) answerChainID(ctx *fasthttp.RequestCtx, inv *invocation.Invocation, buf *[]byte) {
	if inv.ChainTicket == "" {
		ctx.Response.Header.Set("X-Sequoia-Chain-Id", inv.Chain)
		return
	}
	*buf = chainIDValue((*buf)[:0], inv)
	ctx.Response.Header.SetCanonical(headerChainID, *buf)
}

// ticketInvoker puts the ticket admission issued for a new chain on the
// id the function receives, so that it propagates it with the id.
type ticketInvoker struct{ next qos.Invoker }

func (t ticketInvoker) Invoke(inv *invocation.Invocation) error {
	if inv.ChainTicket != "" && inv.Req != nil {
		h := &inv.Req.Header
		if cur := h.PeekBytes(headerChainID); len(cur) != len(inv.Chain)+1+len(inv.ChainTicket) ||
			!bytes.HasSuffix(cur, []byte(inv.ChainTicket)) {
			var buf [256]byte
			h.SetCanonical(headerChainID, chainIDValue(buf[:0], inv))
		}
	}
	return t.next.Invoke(inv)
}
