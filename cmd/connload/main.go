// Command connload measures what connections cost the sidecar: it seeds
// users and conversations into a Django database, opens -n chat
// connections as fast as -c dialers can (connects/s, handshake latency),
// holds them idle, and reads the sidecar's resident memory before and
// after from /proc (KiB per idle connection).
//
// It writes rows: point it only at a test database. The sidecar must allow
// the connections (MAX_USER_CONNECTIONS=0 or high enough, RATE_LIMIT as
// you like), and both processes need file descriptors for them (ulimit -n).
//
//	connload -dsn postgres://postgres@127.0.0.1:5432/bench?sslmode=disable \
//	    -secret "$SECRET_KEY" -url ws://127.0.0.1:8001 -pid "$(pidof sidecar)" -n 10000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/lib/pq"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
)

func main() {
	dsn := flag.String("dsn", "", "Django's PostgreSQL database (rows are added to it)")
	secret := flag.String("secret", os.Getenv("SECRET_KEY"), "SECRET_KEY, to sign HS256 access tokens as SimpleJWT does")
	url := flag.String("url", "ws://127.0.0.1:8001", "the sidecar")
	pid := flag.Int("pid", 0, "the sidecar's process id, to read its memory (0: not measured)")
	n := flag.Int("n", 10000, "connections to open")
	convs := flag.Int("conversations", 100, "conversations the connections are spread over")
	dialers := flag.Int("c", 64, "connections opened at once")
	settle := flag.Duration("settle", 3*time.Second, "idle time before memory is read")
	flag.Parse()
	if *dsn == "" || *secret == "" {
		log.Fatal("connload: -dsn and -secret (or SECRET_KEY) are required")
	}
	db, err := sql.Open("postgres", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	targets, err := seed(db, *secret, *convs)
	if err != nil {
		log.Fatalf("connload: seed: %v", err)
	}
	before := rss(*pid)
	conns, lat, took, failed := connect(*url, targets, *n, *dialers)
	time.Sleep(*settle)
	after := rss(*pid)
	fmt.Printf("connections  %d opened, %d failed, in %v\n", len(conns), failed, took.Round(time.Millisecond))
	fmt.Printf("connects/s   %.0f\n", float64(len(conns))/took.Seconds())
	fmt.Printf("handshake    p50 %v  p99 %v\n", pct(lat, 50), pct(lat, 99))
	if *pid != 0 && len(conns) > 0 {
		fmt.Printf("memory       %d KiB before, %d KiB after: %.1f KiB per idle connection\n",
			before, after, float64(after-before)/float64(len(conns)))
	}
	for _, c := range conns {
		c.Close()
	}
}

type target struct {
	conv  int64
	token string
}

// seed makes n conversations, each between a new listener and a new
// talker, and a token per participant.
func seed(db *sql.DB, secret string, n int) ([]target, error) {
	ctx := context.Background()
	fx := fixture.New(db, djangodb.Postgres)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var out []target
	for i := 0; i < n; i++ {
		l, t, c, err := fx.Pair(ctx, fmt.Sprintf("conn-%s-%d", run, i))
		if err != nil {
			return nil, err
		}
		now := time.Now()
		for _, u := range []int64{l, t} {
			out = append(out, target{c, auth.MintAccess(secret, u, now, time.Hour)})
		}
	}
	return out, nil
}

// connect opens n connections over targets with c dialers and reads each
// one's connect frames.
func connect(url string, targets []target, n, c int) ([]*websocket.Conn, []time.Duration, time.Duration, int) {
	var (
		mu     sync.Mutex
		conns  []*websocket.Conn
		lat    []time.Duration
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				tg := targets[i%len(targets)]
				t0 := time.Now()
				ws, err := dial(d, url, tg)
				if err != nil {
					if failed.Add(1) <= 5 {
						log.Printf("connect %d: %v", i, err)
					}
					continue
				}
				mu.Lock()
				conns = append(conns, ws)
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, lat, time.Since(start), int(failed.Load())
}

func dial(d websocket.Dialer, url string, tg target) (*websocket.Conn, error) {
	ws, _, err := d.Dial(url+"/ws/chat/"+strconv.FormatInt(tg.conv, 10)+"/?token="+tg.token, nil)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < 3; i++ {
		if _, _, err := ws.ReadMessage(); err != nil {
			ws.Close()
			return nil, fmt.Errorf("connect frame %d: %w", i+1, err)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	// Answer pings while idle, as a real client does.
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return ws, nil
}

// rss is a process's resident memory in KiB (VmRSS), 0 if unknown.
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Printf("read memory of %d: %v", pid, err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond)
}
