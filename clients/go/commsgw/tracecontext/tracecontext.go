// Package tracecontext passes the caller's OpenTelemetry trace context to the gateway: gRPC
// client interceptors that add the span of each call's context.Context to its outgoing metadata
// (traceparent, tracestate, whatever the propagator writes), so the gateway's spans continue the
// caller's trace.
//
//	conn, err := grpc.Dial(target, append(tracecontext.DialOptions(), creds)...)
//
// The propagator is the global one (otel.SetTextMapPropagator); while none is set (OpenTelemetry's
// default propagator writes nothing), W3C trace context (propagation.TraceContext). A context
// without a valid span adds nothing.
//
// It is a package of its own so that package commsgw builds without OpenTelemetry: only this
// one imports go.opentelemetry.io/otel (on Debian 12: golang-opentelemetry-otel-dev).
package tracecontext

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// DialOptions are the dial options that add both interceptors (chained after any others).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(StreamClientInterceptor()),
	}
}

// UnaryClientInterceptor sends the trace context of each unary call's context.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(Inject(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor sends the trace context of each stream's context (WatchOperations):
// the one its stream is opened with, so every reconnect a caller makes with the same context
// carries the same trace context.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(Inject(ctx), desc, cc, method, opts...)
	}
}

// Inject returns ctx with the trace context of its span in the outgoing metadata (replacing
// any set there before); ctx itself when it holds no valid span.
func Inject(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	carrier := mapCarrier{}
	propagator().Inject(ctx, carrier)
	if len(carrier) == 0 {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy, with what was appended
	if md == nil {
		md = metadata.MD{}
	}
	for k, v := range carrier {
		md.Set(strings.ToLower(k), v)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// mapCarrier is a propagation.TextMapCarrier over a map (OpenTelemetry 1.1, Debian 12's, has
// only the http.Header one).
type mapCarrier map[string]string

func (c mapCarrier) Get(key string) string { return c[key] }

func (c mapCarrier) Set(key, value string) { c[key] = value }

func (c mapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// propagator is the global propagator, W3C trace context while none is set.
func propagator() propagation.TextMapPropagator {
	if p := otel.GetTextMapPropagator(); len(p.Fields()) > 0 {
		return p
	}
	return propagation.TraceContext{}
}
