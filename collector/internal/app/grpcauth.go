package app

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/peerlog"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// queryGuard applies the REST API's rules to the gRPC query service and to server
// reflection (which describes it), on the listener they share with the sensors:
//
//   - the per-client rate limit, with the REST API's limiter (one allowance per
//     peer IP for both APIs), before the token so that guessing tokens is limited
//     too: RESOURCE_EXHAUSTED;
//   - the API token as metadata "authorization: Bearer TOKEN": UNAUTHENTICATED;
//   - without a token, the REST API listens on loopback only; the gRPC listener is
//     the sensors' too and may be public, so the query service answers loopback
//     peers only (PERMISSION_DENIED), unless --allow-unauthenticated.
//
// GetHealth needs no token, as /api/v1/health: probes call it without credentials
// and it says nothing about the traffic. The SensorService is not guarded here: it
// has its own authentication (sensor tokens, mTLS) and no rate limit.
type queryGuard struct {
	token                *api.Token
	limiter              *api.Limiter
	allowUnauthenticated bool
	limited              atomic.Uint64 // calls refused by the rate limit
}

var queryPrefix = "/" + netwatchv1.QueryService_ServiceDesc.ServiceName + "/"

// guarded reports whether method is the query service's or reflection's.
func guarded(method string) bool {
	return strings.HasPrefix(method, queryPrefix) || strings.HasPrefix(method, "/grpc.reflection.")
}

func (g *queryGuard) check(ctx context.Context, method string) error {
	if !guarded(method) {
		return nil
	}
	var ip netip.Addr
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ip = peerlog.IP(p.Addr.String())
	}
	if wait, ok := g.limiter.Allow(ip); !ok {
		g.limited.Add(1)
		return status.Error(codes.ResourceExhausted, "rate limit exceeded: retry in "+strconv.FormatInt(api.RetryAfterSeconds(wait), 10)+"s")
	}
	if method == netwatchv1.QueryService_GetHealth_FullMethodName {
		return nil
	}
	if g.token.Get() == "" {
		if !g.allowUnauthenticated && !ip.IsLoopback() {
			return status.Error(codes.PermissionDenied, "the query API answers loopback clients only while the collector has no API token: set --api-token (or --allow-unauthenticated) on the collector")
		}
		return nil
	}
	var auth string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			auth = v[0]
		}
	}
	if !g.token.Accepts(auth) {
		return status.Error(codes.Unauthenticated, "a valid bearer token is required (metadata authorization: Bearer TOKEN, the collector's --api-token)")
	}
	return nil
}

func (g *queryGuard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g *queryGuard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := g.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
