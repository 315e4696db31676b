package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/query"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// maxClientMessage bounds what a client may send (a subscribe message).
const maxClientMessage = 64 << 10

// client is one WebSocket connection: a bounded queue filled by the hub, drained by
// its writer goroutine; its reader goroutine takes subscriptions; its pinger closes it
// when it stops reading.
type client struct {
	hub    *Hub
	conn   *websocket.Conn
	remote string
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	queue [][]byte // FIFO, at most hub.cfg.QueueLength
	lost  uint64   // dropped since the last "lost" message
	wake  chan struct{}

	filter    atomic.Pointer[query.FlowQuery] // nil: not subscribed to flows
	closeOnce sync.Once
}

func newClient(h *Hub, conn *websocket.Conn, remote string) *client {
	ctx, cancel := context.WithCancel(context.Background())
	conn.SetReadLimit(maxClientMessage)
	return &client{hub: h, conn: conn, remote: remote, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

// enqueue adds msg, dropping the oldest queued message when the queue is full. It
// never blocks and never touches the socket.
func (c *client) enqueue(msg []byte) {
	c.mu.Lock()
	if len(c.queue) >= c.hub.cfg.QueueLength {
		copy(c.queue, c.queue[1:])
		c.queue = c.queue[:len(c.queue)-1]
		c.lost++
	}
	c.queue = append(c.queue, msg)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest message; a pending loss is reported first.
func (c *client) next() (msg []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost > 0 {
		n := c.lost
		c.lost = 0
		return encodeLost(c.hub.deps.Now(), n), true
	}
	if len(c.queue) == 0 {
		return nil, false
	}
	msg = c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	return msg, true
}

// run serves the client until it goes away; it runs in the HTTP handler.
func (c *client) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writeLoop() }()
	go func() { defer wg.Done(); c.pingLoop() }()
	c.readLoop()
	c.cancel()
	wg.Wait()
	c.conn.CloseNow()
}

// shutdown sends a close frame with code and reason and so ends the read loop. The
// context is not cancelled at once: cancelling a read closes the socket before the
// close frame goes. A client that does not answer the close within the grace (one
// that reads nothing never does) is cut off by cancelling it.
func (c *client) shutdown(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			_ = c.conn.Close(code, reason)
			close(done)
		}()
		go func() {
			select {
			case <-done:
			case <-time.After(min(time.Second, c.hub.cfg.IdleTimeout)):
				c.cancel()
			}
		}()
	})
}

// writeLoop drains the queue onto the socket; no lock is held while writing. A
// write that does not complete within the idle timeout closes the client.
func (c *client) writeLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		for {
			msg, ok := c.next()
			if !ok {
				break
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.hub.cfg.IdleTimeout)
			err := c.conn.Write(ctx, websocket.MessageText, msg)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					c.hub.deps.Log.Info("live client closed: write failed", "remote", c.remote, "err", err)
				}
				c.shutdown(websocket.StatusPolicyViolation, "not reading")
				return
			}
		}
	}
}

// pingLoop pings every third of the idle timeout; a ping not answered within the
// idle timeout means the client reads nothing, and it is closed.
func (c *client) pingLoop() {
	every := c.hub.cfg.IdleTimeout / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.hub.cfg.IdleTimeout)
		err := c.conn.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.hub.deps.Log.Info("live client closed: it read nothing", "remote", c.remote, "timeout", c.hub.cfg.IdleTimeout)
			}
			c.shutdown(websocket.StatusPolicyViolation, fmt.Sprintf("read nothing for %v", c.hub.cfg.IdleTimeout))
			return
		}
	}
}

// clientMessage is what a client sends.
type clientMessage struct {
	Type   string                     `json:"type"`
	Filter map[string]json.RawMessage `json:"filter"`
}

// readLoop takes subscribe and unsubscribe messages until the connection ends. It
// also reads the pongs the pinger waits for.
func (c *client) readLoop() {
	for {
		typ, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.enqueue(encodeError(c.hub.deps.Now(), "INVALID_ARGUMENT", "", "messages are JSON text"))
			continue
		}
		var m clientMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.enqueue(encodeError(c.hub.deps.Now(), "INVALID_ARGUMENT", "", "message is not JSON: "+err.Error()))
			continue
		}
		switch m.Type {
		case "subscribe":
			fq, field, err := parseFilter(m.Filter)
			if err != nil {
				c.enqueue(encodeError(c.hub.deps.Now(), "INVALID_ARGUMENT", field, err.Error()))
				continue
			}
			c.filter.Store(fq)
			c.enqueue(encodeSubscribed(c.hub.deps.Now(), m.Filter))
		case "unsubscribe":
			c.filter.Store(nil)
			c.enqueue(encodeSubscribed(c.hub.deps.Now(), nil))
		default:
			c.enqueue(encodeError(c.hub.deps.Now(), "INVALID_ARGUMENT", "type", fmt.Sprintf("type %q is not one of subscribe, unsubscribe", m.Type)))
		}
	}
}

// parseFilter reads a subscription filter: the query parameters of GET
// /api/v1/flows (strings, or numbers for port), validated by the REST API's own
// parser. Paging, sorting and format parameters are accepted and ignored. An error
// names the field.
func parseFilter(raw map[string]json.RawMessage) (*query.FlowQuery, string, error) {
	vals := map[string]string{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				if string(v) == "null" {
					continue
				}
				return nil, k, fmt.Errorf("%s: must be a string or a number", k)
			}
			s = n.String()
		}
		switch k {
		case "src_ip", "dst_ip", "protocol", "port", "time_start", "time_end", "sensor", "status", "q",
			"community_id", "application", "server_name", "host", "asn", "country":
			vals[k] = s
		case "limit", "offset", "sort_by", "sort_order", "format":
		default:
			return nil, k, fmt.Errorf("%s: unknown filter field (use src_ip, dst_ip, protocol, port, time_start, time_end, sensor, status, community_id, application, server_name, host, asn, country, q)", k)
		}
	}
	fq, err := query.ParseFlowQuery(&netwatchv1.ListFlowsRequest{
		SrcIp: vals["src_ip"], DstIp: vals["dst_ip"], Protocol: vals["protocol"], Port: vals["port"],
		TimeStart: vals["time_start"], TimeEnd: vals["time_end"], Sensor: vals["sensor"],
		Status: vals["status"], Q: vals["q"],
		CommunityId: vals["community_id"], Application: vals["application"], ServerName: vals["server_name"],
		Host: vals["host"], Asn: vals["asn"], Country: vals["country"],
	})
	if err != nil {
		return nil, fieldOf(err), errors.New(status.Convert(err).Message())
	}
	return fq, "", nil
}

// fieldOf is the parameter an InvalidArgument status names.
func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				return v.GetField()
			}
		}
	}
	return ""
}
