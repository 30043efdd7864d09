package docs_test

import (
	"reflect"
	"testing"
)

// The checker must find what it is meant to find: these are the anchors
// GitHub gives these headings, and the links a reader would click.

func TestSlugify(t *testing.T) {
	for text, want := range map[string]string{
		"Sharing Channels groups through Redis":                                             "sharing-channels-groups-through-redis",
		"5.1 `{\"type\": \"chat_message\", \"message\": \"<text>\"}`":                       "51-type-chat_message-message-text",
		"4. Connecting: `GET /ws/chat/<conversation_id>/?token=<JWT>`":                      "4-connecting-get-wschatconversation_idtokenjwt",
		"1.1 Names and Redis keys (no separator between prefix and channel)":                "11-names-and-redis-keys-no-separator-between-prefix-and-channel",
		"channels_redis 4.0.0 / channels 4.0.0 / daphne 4.0.0: wire notes for a Go sidecar": "channels_redis-400--channels-400--daphne-400-wire-notes-for-a-go-sidecar",
		"*Emphasis*, **bold** and _emph_ in [a link](x.md)":                                 "emphasis-bold-and-emph-in-a-link",
		"Rolling back": "rolling-back",
		"Été à Zürich": "été-à-zürich",
		"  SQLite  ":   "sqlite",
	} {
		if got := slugify(text); got != want {
			t.Errorf("slugify(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestHeadingAnchors(t *testing.T) {
	src := "# Title\n\n## Setup\n\ntext\n\n## Setup\n\n```\n## not a heading\n```\n\nSetext one\n===\n\n<a id=\"custom\"></a>\n## Closed ##\n"
	got := headingAnchors(src)
	want := map[string]bool{"title": true, "setup": true, "setup-1": true, "setext-one": true, "custom": true, "closed": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("anchors = %v, want %v", got, want)
	}
}

func TestMarkdownLinks(t *testing.T) {
	src := "See [`PROTOCOL.md`](../shared/PROTOCOL.md) and [SQLite](#sqlite).\n" +
		"An image ![x](img/a.png \"title\"), [ext](https://example.com), `[code](no.md)`, \\[esc](no2.md).\n" +
		"```sh\n[fenced](no3.md)\n```\n" +
		"[ref]: docs/deployment.md#health-checks\n" +
		"   ~~~\n   [tilde](no4.md)\n   ~~~\n" +
		"Two [a](a.md#x) [b](<b c.md>) on a line; [T2] is not a link (nor is this).\n"
	got := markdownLinks(src)
	want := []link{
		{1, "../shared/PROTOCOL.md"}, {1, "#sqlite"},
		{2, "img/a.png"}, {2, "https://example.com"},
		{6, "docs/deployment.md#health-checks"},
		{10, "a.md#x"}, {10, "b c.md"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("links = %v\nwant    %v", got, want)
	}
	for dest, rel := range map[string]bool{"#x": true, "a.md": true, "/docs/x.md": true, "https://x": false, "mailto:a@b": false, "//cdn/x": false} {
		if isRelative(dest) != rel {
			t.Errorf("isRelative(%q) = %v", dest, !rel)
		}
	}
}
