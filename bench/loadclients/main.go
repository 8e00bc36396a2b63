// loadclients: many Socket.IO clients in one process, for eventdash's fan-out benchmarks.
//
// Python clients need more CPU per message than the dashboard spends sending it, so on a small
// machine they, not the server, would set the limit. This speaks the little of Engine.IO v4 /
// Socket.IO v5 over WebSocket that a dashboard viewer needs: open, connect (with auth
// {"delta": true} in delta mode), answer pings, read "stats" and "stats_delta" events, and emit
// "resync" when a delta's base is not the last seq seen.
//
// Usage: loadclients URL CLIENTS MODE CONTROL_DIR OUT
// Connects CLIENTS clients (200 per second), measures from when CONTROL_DIR/measure exists until
// CONTROL_DIR/stop exists, then writes {"connected", "delays", "bytes", "seconds", "resyncs", "errors"}
// to OUT. Delay = receive time - the document's generated_at_ms; bytes = Socket.IO packets as sent.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const connectsPerSecond = 200

type tally struct {
	mu      sync.Mutex
	delays  []int64
	bytes   int64
	resyncs int64
}

var measuring atomic.Bool

// number after `"key":` in msg, or -1
func number(msg []byte, key string) int64 {
	i := bytes.Index(msg, []byte(`"`+key+`":`))
	if i < 0 {
		return -1
	}
	i += len(key) + 3
	j := i
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(msg[i:j]), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

func client(url string, delta bool, t *tally, stop <-chan struct{}, connected *atomic.Int64, errors *atomic.Int64,
	wg *sync.WaitGroup) {
	defer wg.Done()
	dialer := websocket.Dialer{HandshakeTimeout: 120 * time.Second, EnableCompression: true} // like browsers: permessage-deflate
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		errors.Add(1)
		return
	}
	defer conn.Close()
	if _, open, err := conn.ReadMessage(); err != nil || len(open) == 0 || open[0] != '0' {
		errors.Add(1)
		return
	}
	connect := "40"
	if delta {
		connect = `40{"delta":true}`
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(connect)); err != nil {
		errors.Add(1)
		return
	}
	var writeMu sync.Mutex
	send := func(text string) {
		writeMu.Lock()
		defer writeMu.Unlock()
		_ = conn.WriteMessage(websocket.TextMessage, []byte(text))
	}
	go func() {
		<-stop
		writeMu.Lock()
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		writeMu.Unlock()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	}()
	var seq, generated int64 = -1, -1
	var mine []int64
	var myBytes int64
	counted := false
	defer func() {
		t.mu.Lock()
		t.delays = append(t.delays, mine...)
		t.bytes += myBytes
		t.mu.Unlock()
	}()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case len(msg) == 1 && msg[0] == '2':
			send("3")
		case bytes.HasPrefix(msg, []byte("40")):
			if !counted {
				counted = true
				connected.Add(1)
			}
		case bytes.HasPrefix(msg, []byte(`42["stats",`)):
			if s := number(msg, "seq"); s >= 0 {
				seq = s
			}
			generated = number(msg, "generated_at_ms")
			record(msg, generated, &mine, &myBytes)
		case bytes.HasPrefix(msg, []byte(`42["stats_delta",`)):
			base, next := number(msg, "base"), number(msg, "seq")
			if seq < 0 || base != seq {
				atomic.AddInt64(&t.resyncs, 1)
				send(`42["resync"]`)
				continue
			}
			seq = next
			if g := number(msg, "generated_at_ms"); g >= 0 {
				generated = g
			}
			record(msg, generated, &mine, &myBytes)
		}
	}
}

func record(msg []byte, generated int64, delays *[]int64, total *int64) {
	if !measuring.Load() {
		return
	}
	*total += int64(len(msg))
	if generated >= 0 {
		*delays = append(*delays, time.Now().UnixMilli()-generated)
	}
}

func waitFor(path string) {
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: loadclients URL CLIENTS MODE CONTROL_DIR OUT")
		os.Exit(2)
	}
	base, mode, control, out := os.Args[1], os.Args[3], os.Args[4], os.Args[5]
	clients, err := strconv.Atoi(os.Args[2])
	if err != nil || (mode != "delta" && mode != "full") {
		fmt.Fprintln(os.Stderr, "CLIENTS must be a number and MODE delta or full")
		os.Exit(2)
	}
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	t := &tally{}
	stop := make(chan struct{})
	var connected, errors atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go client(url, mode == "delta", t, stop, &connected, &errors, &wg)
		time.Sleep(time.Second / connectsPerSecond)
	}
	waitFor(filepath.Join(control, "measure"))
	measuring.Store(true)
	started := time.Now()
	waitFor(filepath.Join(control, "stop"))
	measuring.Store(false)
	seconds := time.Since(started).Seconds()
	close(stop)
	wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	result, _ := json.Marshal(map[string]any{"connected": connected.Load(), "delays": t.delays, "bytes": t.bytes,
		"seconds": seconds, "resyncs": t.resyncs, "errors": errors.Load()})
	if err := os.WriteFile(out, result, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
