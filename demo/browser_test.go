package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// blockedText is the error of PROTOCOL.md 5.1 step 2.
const blockedText = "You cannot message this user because they have blocked you or you have blocked them"

// blockedFileText is the error of PROTOCOL.md 5.2 step 2.
const blockedFileText = "You cannot send files to this user because they have blocked you or you have blocked them"

// TestPageInChromium drives /demo/ in headless Chromium (Debian's chromium
// package) through the timeline of PROTOCOL.md section 9: the talker's
// message reaches the listener's pane; after "block" the talker's pane shows
// the blocked errors (text, file) and the listener's pane gets nothing, and
// a reconnection is refused; after "unblock" the next message and a file
// arrive, and the file link serves the file. Along the way the listener's
// inbox (section 10) shows the conversation on load and its preview after
// a message. Then a conversation request (section 11): the second talker
// opens one, the listener's notifications show it, the listener accepts,
// the talker's notifications show conversation_accepted and the inbox
// shows the new conversation active. Set DEMO_SCREENSHOTS=<dir> to keep
// screenshots.
func TestPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("this test drives Debian's chromium, which is not installed: apt-get install chromium (scripts/test.sh does it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	d, err := Prepare(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	ready := make(chan *Server, 1)
	served := make(chan error, 1)
	go func() {
		served <- Serve(srvCtx, d, ServeConfig{Addr: "127.0.0.1:0", AllowedHosts: []string{"localhost", "127.0.0.1"}}, ready)
	}()
	defer func() {
		stopSrv()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var srv *Server
	select {
	case srv = <-ready:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1000),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	shots := os.Getenv("DEMO_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Error(err)
		}
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, actions...); err != nil {
			shot("failed")
			t.Fatalf("%s: %v\n%s", what, err, paneText(browser))
		}
	}
	// waitFor polls a JavaScript condition on the page.
	waitFor := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok, err := chromedp.Run(browser, chromedp.Evaluate[bool](cond))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				shot("failed")
				t.Fatalf("timed out waiting until %s (%s)\n%s", what, cond, paneText(browser))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	has := func(sel, text string) string {
		return fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").includes(%s)`, sel, strconv.Quote(text))
	}
	send := func(text string) {
		t.Helper()
		run("talker sends "+text,
			chromedp.SendKeys(chromedp.CSS("#talker .text"), text),
			chromedp.Click(chromedp.CSS("#talker .send")))
	}

	// T0: both connected, history loaded, chatting.
	start := time.Now()
	run("open the demo page", chromedp.Navigate(srv.PageURL()))
	for _, role := range []string{"listener", "talker"} {
		waitFor(role+" is connected", fmt.Sprintf(`document.querySelector("#%s .status")?.textContent === "connected"`, role))
		waitFor(role+" has the history", has("#"+role+" .log", "conversation_history (0)"))
	}
	t.Logf("page loaded, both panes connected with their history: %v after navigating", time.Since(start).Round(time.Millisecond))
	// The inbox and both notification feeds are up; the inbox lists the
	// chat's conversation, with no message yet.
	for _, id := range []string{"inbox", "listener-notifications", "requester"} {
		waitFor(id+" is connected", fmt.Sprintf(`document.querySelector("#%s .status")?.textContent === "connected"`, id))
	}
	chatItem := fmt.Sprintf(`#inbox .conv[data-id="%d"]`, d.ConversationID)
	waitFor("the inbox lists the chat's conversation", has(chatItem, "Tom Talker")+" && "+has(chatItem, "No messages yet"))
	waitFor("the inbox frame is logged", has("#inbox .log", "conversation_list (1)"))
	send("Hello from Tom")
	waitFor("the listener's pane shows the talker's message", has("#listener .messages", "Hello from Tom"))
	waitFor("the talker's pane shows its own message", has("#talker .messages", "Hello from Tom"))
	waitFor("the inbox shows the message as the preview", has(chatItem+" .preview", "Hello from Tom")+" && "+has(chatItem, "1 message"))
	shot("1-chatting")

	// T1, T2: blocked; the talker gets the error, the listener nothing.
	run("click block", chromedp.Click(chromedp.CSS("#block")))
	waitFor("the badge says blocked", has("#blockstate", "talker blocked"))
	send("Are you there?")
	waitFor("the talker's pane shows the blocked error", has("#talker .errors", blockedText))
	time.Sleep(500 * time.Millisecond) // room for a wrong broadcast to arrive
	leaked, err := chromedp.Run(browser, chromedp.Evaluate[bool](has("#listener", "Are you there?")))
	if err != nil {
		t.Fatal(err)
	}
	if leaked {
		t.Fatalf("the listener's pane shows a message sent while blocked\n%s", paneText(browser))
	}
	waitFor("the talker's list does not show it either", "!"+has("#talker .messages", "Are you there?"))
	// T3: a file is refused with the file wording.
	upload := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(upload, []byte("a note from Tom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("talker sends a file while blocked",
		chromedp.SetUploadFiles(chromedp.CSS("#talker .file"), []string{upload}),
		chromedp.Click(chromedp.CSS("#talker .sendfile")))
	waitFor("the talker's pane shows the file error", has("#talker .errors", blockedFileText))
	// T4: typing while blocked: nothing reaches the listener. The barrier
	// is a mark_read sent on the talker's socket after the typing frame
	// (never blocked): the listener's read receipt comes after anything the
	// typing could have caused.
	count := func(sel, text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll(%q)].filter((li) => li.textContent.includes(%s)).length`,
			sel+" li", strconv.Quote(text))
	}
	typingBefore, err := chromedp.Run(browser, chromedp.Evaluate[int](count("#listener .log", "← typing")))
	if err != nil {
		t.Fatal(err)
	}
	receiptsBefore, err := chromedp.Run(browser, chromedp.Evaluate[int](count("#listener .log", "← read_receipt")))
	if err != nil {
		t.Fatal(err)
	}
	run("talker types while blocked", chromedp.SendKeys(chromedp.CSS("#talker .text"), "typing while blocked"))
	waitFor("the talker's typing frame is sent", count("#talker .log", "→ typing true")+" > 0")
	run("barrier: mark_read on the talker's socket", chromedp.Evaluate[chromedp.Void](`panes[1].send({type: "mark_read"})`))
	waitFor("the listener gets the read receipt", fmt.Sprintf("%s > %d", count("#listener .log", "← read_receipt"), receiptsBefore))
	typingAfter, err := chromedp.Run(browser, chromedp.Evaluate[int](count("#listener .log", "← typing")))
	if err != nil {
		t.Fatal(err)
	}
	if typingAfter != typingBefore {
		t.Fatalf("the listener got a typing frame from a blocked talker\n%s", paneText(browser))
	}
	run("clear the talker's text", chromedp.Evaluate[chromedp.Void](`document.querySelector("#talker .text").value = ""`))

	// T4': a new connection is refused.
	run("talker reconnects while blocked", chromedp.Click(chromedp.CSS("#talker .reconnect")))
	waitFor("the talker's reconnection is refused", has("#talker .status", "refused"))
	shot("2-blocked")

	// T5, T6: unblocked; the next message arrives.
	run("click unblock", chromedp.Click(chromedp.CSS("#unblock")))
	waitFor("the badge says not blocked", has("#blockstate", "not blocked"))
	run("talker reconnects", chromedp.Click(chromedp.CSS("#talker .reconnect")))
	waitFor("the talker is connected again", `document.querySelector("#talker .status")?.textContent === "connected"`)
	send("Back again")
	waitFor("the listener's pane shows the message sent after unblocking", has("#listener .messages", "Back again"))
	run("talker sends the file",
		chromedp.SetUploadFiles(chromedp.CSS("#talker .file"), []string{upload}),
		chromedp.Click(chromedp.CSS("#talker .sendfile")))
	waitFor("the listener's pane links the file", has("#listener .messages .file a", "note.txt"))
	body, err := chromedp.Run(browser, chromedp.Evaluate[string](
		`fetch(document.querySelector("#listener .file a").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || body != "a note from Tom\n" {
		t.Fatalf("the file link gives %q, %v", body, err)
	}
	waitFor("the listener's read receipt reaches the talker", `document.querySelector("#talker .msg.mine .read")?.textContent.includes("read") && !document.querySelector("#talker .msg.mine .read").textContent.includes("unread")`)
	shot("3-unblocked")

	// A conversation request: the second talker opens one, the listener
	// accepts it.
	requestStart := time.Now()
	run("the second talker opens a conversation request",
		chromedp.SetValue(chromedp.CSS("#requester .initial"), "Hi Lena, can we talk?"),
		chromedp.Click(chromedp.CSS("#requester .open")))
	waitFor("the request is created", has("#requester .result", "created (pending)"))
	request := `#listener-notifications .note[data-type="conversation_request"]`
	waitFor("the listener's notifications show the request",
		has(request, "New conversation request from Nora Newcomer")+" && "+has(request+" blockquote", "Hi Lena, can we talk?"))
	noraItem := func(status string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#inbox .conv")].some((li) => li.textContent.includes("Nora Newcomer") && li.dataset.status === %q)`, status)
	}
	waitFor("the inbox lists the request as pending", noraItem("pending"))
	shot("4-requested")
	run("the listener accepts", chromedp.Click(chromedp.CSS(request+" .accept")))
	waitFor("the listener's side says it is accepted", has(request+" .outcome", "active"))
	accepted := `#requester .note[data-type="conversation_accepted"]`
	waitFor("the talker's notifications show conversation_accepted", has(accepted, "Your conversation request was accepted by Lena Listener"))
	waitFor("the inbox shows the new conversation as active", noraItem("active"))
	waitFor("the chat's conversation is still listed", has(chatItem, "Tom Talker"))
	t.Logf("request, notification, accept, inbox: %v", time.Since(requestStart).Round(time.Millisecond))
	shot("5-accepted")
}

// paneText is the page's panes as text, for failure messages.
func paneText(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("panes")?.innerText ?? ""`))
	return s
}
