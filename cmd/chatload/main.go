// Command chatload measures the chat WebSocket under load: it seeds users
// and conversations into a Django database, connects a talker and a
// listener to each conversation, and has every talker send messages in a
// closed loop (send, wait for its own new_message). It prints the rate of
// saved-and-delivered messages and the latency from send to the listener's
// new_message (p50/p99).
//
// It writes rows: point it only at a test database.
//
//	chatload -dsn postgres://postgres@127.0.0.1:5432/loadtest?sslmode=disable \
//	    -secret "$SECRET_KEY" -url ws://127.0.0.1:8001 -conversations 50 -duration 10s
//
// -rate paces each talker (messages per second) to measure latency below
// saturation.
//
// -listen-url sends the listeners to another server (a second sidecar, or
// Daphne), to measure delivery across processes through the channel layer.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	talkURL := flag.String("url", "ws://127.0.0.1:8001", "server the talkers connect to")
	listenURL := flag.String("listen-url", "", "server the listeners connect to (default: -url)")
	convs := flag.Int("conversations", 20, "conversations, each with a talker and a listener connected")
	duration := flag.Duration("duration", 10*time.Second, "how long the talkers send")
	size := flag.Int("size", 32, "bytes of content per message")
	rate := flag.Float64("rate", 0, "messages per second per talker (0: as fast as replies come back)")
	flag.Parse()
	if *dsn == "" || *secret == "" {
		log.Fatal("chatload: -dsn and -secret (or SECRET_KEY) are required")
	}
	if *listenURL == "" {
		*listenURL = *talkURL
	}
	db, err := sql.Open("postgres", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	pairs, err := seed(db, *convs)
	if err != nil {
		log.Fatalf("chatload: seed: %v", err)
	}
	res, err := load(pairs, *secret, *talkURL, *listenURL, *duration, *size, *rate)
	if err != nil {
		log.Fatalf("chatload: %v", err)
	}
	res.print(*convs, *duration)
}

type pair struct{ conv, listener, talker int64 }

// seed adds one listener, one talker and an active conversation per pair,
// as Django writes them.
func seed(db *sql.DB, n int) ([]pair, error) {
	ctx := context.Background()
	fx := fixture.New(db, djangodb.Postgres)
	run := randHex(4)
	out := make([]pair, n)
	for i := range out {
		l, err := fx.User(ctx, fixture.User{Email: fmt.Sprintf("load-%s-listener-%d@example.com", run, i), Type: "listener"})
		if err != nil {
			return nil, err
		}
		t, err := fx.User(ctx, fixture.User{Email: fmt.Sprintf("load-%s-talker-%d@example.com", run, i), Type: "talker"})
		if err != nil {
			return nil, err
		}
		c, err := fx.Conversation(ctx, fixture.Conversation{ListenerID: l, TalkerID: t, Status: "active"})
		if err != nil {
			return nil, err
		}
		out[i] = pair{c, l, t}
	}
	return out, nil
}

// token mints an access token as SimpleJWT does.
func token(secret string, user int64) string {
	return auth.MintAccess(secret, user, time.Now(), time.Hour)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type result struct {
	mu        sync.Mutex
	sent      int
	latencies []time.Duration // send → the listener's new_message
	errors    int
}

func dial(base string, conv int64, tok string) (*websocket.Conn, error) {
	u := strings.TrimRight(base, "/") + "/ws/chat/" + strconv.FormatInt(conv, 10) + "/?token=" + tok
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to conversation %d: %w", conv, err)
	}
	for i := 0; i < 3; i++ { // the connect frames
		if _, _, err := ws.ReadMessage(); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

type frame struct {
	Type          string `json:"type"`
	Message       string `json:"message"`
	LatestMessage struct {
		Content string `json:"content"`
	} `json:"latest_message"`
}

func load(pairs []pair, secret, talkURL, listenURL string, d time.Duration, size int, rate float64) (*result, error) {
	res := &result{}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2*len(pairs))
	pad := strings.Repeat("x", max(0, size-20))
	for _, p := range pairs {
		lws, err := dial(listenURL, p.conv, token(secret, p.listener))
		if err != nil {
			return nil, err
		}
		tws, err := dial(talkURL, p.conv, token(secret, p.talker))
		if err != nil {
			return nil, err
		}
		wg.Add(2)
		// The listener records when each message arrives.
		go func() {
			defer wg.Done()
			defer lws.Close()
			for {
				_ = lws.SetReadDeadline(time.Now().Add(d + 30*time.Second))
				_, data, err := lws.ReadMessage()
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) != nil || f.Type != "new_message" {
					continue
				}
				sentAt, err := strconv.ParseInt(strings.SplitN(f.LatestMessage.Content, " ", 2)[0], 10, 64)
				if err != nil {
					continue
				}
				res.mu.Lock()
				res.latencies = append(res.latencies, time.Since(time.Unix(0, sentAt)))
				res.mu.Unlock()
			}
		}()
		// The talker sends, then waits for its own copy.
		go func() {
			defer wg.Done()
			defer func() { time.Sleep(time.Second); lws.Close(); tws.Close() }()
			var tick <-chan time.Time
			if rate > 0 {
				ticker := time.NewTicker(time.Duration(float64(time.Second) / rate))
				defer ticker.Stop()
				tick = ticker.C
			}
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				msg := fmt.Sprintf(`{"type": "chat_message", "message": "%d %s"}`, time.Now().UnixNano(), pad)
				if err := tws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					errc <- err
					return
				}
				for {
					_ = tws.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, data, err := tws.ReadMessage()
					if err != nil {
						errc <- err
						return
					}
					var f frame
					_ = json.Unmarshal(data, &f)
					if f.Type == "error" {
						res.mu.Lock()
						res.errors++
						res.mu.Unlock()
						break
					}
					if f.Type == "new_message" {
						res.mu.Lock()
						res.sent++
						res.mu.Unlock()
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			return res, err
		}
	default:
	}
	return res, nil
}

func (r *result) print(convs int, d time.Duration) {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	q := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(p*float64(len(r.latencies)-1))]
	}
	fmt.Printf("conversations=%d duration=%s messages=%d rate=%.0f/s errors=%d delivered=%d p50=%s p99=%s\n",
		convs, d, r.sent, float64(r.sent)/d.Seconds(), r.errors, len(r.latencies),
		q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond))
}
