// Package hostile replays the hostile loads that once took the sidecar to
// gigabytes against the real sidecar binary, one sidecar process per
// attack, and checks three things of each:
//
//   - the process's peak RSS (VmHWM of /proc/<pid>/status) stays under
//     256 MiB; the sidecar measured is built without the race detector
//     (testenv.PlainSidecar), which multiplies memory several times over,
//     while the tests themselves run under -race as usual;
//   - a bystander pair in another conversation of the same sidecar keeps
//     being served: its talker sends in a closed loop (20 messages a
//     second) and the p99 of send → own new_message stays under 200 ms,
//     every round trip under 1 s;
//   - the attacker is refused or closed as README.md documents, asserted
//     exactly (close codes, HTTP statuses, error frames).
//
// Every test logs its numbers (go test -v): baseline and peak RSS, the
// sidecar's CPU time, the bystander's p50/p99/max and message count, and
// the attacker's outcome.
//
// # What the suite found
//
// Each of these was a server bug the suite found and now checks is gone:
//
//   - a connection dropped for its send queue was cut without its close
//     frame (the write in progress was cut off): now the frame in
//     progress gets WRITE_TIMEOUT to finish and the close frame follows;
//     only a peer that cannot read that one frame in time is cut;
//   - a history load's wait for memory ran under its DB_TIMEOUT, so a
//     connect got 500 instead of 503 and a new message reached nobody;
//   - work waiting for memory held what it had taken and starved every
//     other conversation: now the first piece of any work may use a
//     reserve;
//   - each new_message was counted whole against SEND_QUEUE_BYTES, so
//     a burst in a long conversation dropped members that read at once:
//     now the history frames share is counted once per connection.
package hostile
