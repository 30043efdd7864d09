package mediastore

import "strings"

// Golden cases printed by /usr/bin/python3 3.11.2 with python3-django 3.2.25
// (Unicode 14.0). cleanNameGolden: the part after the last '/' or '\', refused
// if '', '.' or '..', else django.utils.text.get_valid_filename (ok=false:
// SuspiciousFileOperation). base64Golden: base64.b64decode(s); ok=false is a
// binascii.Error or ValueError, want is the hex of the bytes Python returned
// (DecodeBase64 additionally refuses zero bytes).

var cleanNameGolden = []struct {
	in, want string
	ok       bool
}{
	{"hello world.txt", "hello_world.txt", true},
	{"  hello world.txt  ", "hello_world.txt", true},
	{"фото 1.jpg", "фото_1.jpg", true},
	{"../../etc/passwd", "passwd", true},
	{"a/b.png", "b.png", true},
	{"..\\..\\x", "x", true},
	{"", "", false},
	{".", "", false},
	{"..", "", false},
	{"...", "...", true},
	{" . ", "", false},
	{" .. ", "", false},
	{"a/", "", false},
	{"a\\", "", false},
	{"/", "", false},
	{"a/..", "", false},
	{"john's portrait in 2004.jpg", "johns_portrait_in_2004.jpg", true},
	{"a\u0000b.txt", "ab.txt", true},
	{"\u0000", "", false},
	{"\u0000.", "", false},
	{"..\u0000", "", false},
	{"$$$", "", false},
	{"a b\u0009c.txt", "a_bc.txt", true},
	{"\u001c a b \u001f", "a_b", true},
	{"\u3000a b\u3000", "a_b", true},
	{"\u00a0x\u00a0", "x", true},
	{"a\u00a0b", "ab", true},
	{"tab\u0009here", "tabhere", true},
	{"e\u0301.png", "e.png", true},
	{"日本語 ファイル.pdf", "日本語_ファイル.pdf", true},
	{"Ⅻ½²₃.txt", "Ⅻ½²₃.txt", true},
	{"naïve café.doc", "naïve_café.doc", true},
	{"emoji😀.png", "emoji.png", true},
	{"x<y>:z|?*.txt", "xyz.txt", true},
	{"-rf", "-rf", true},
	{".bashrc", ".bashrc", true},
	{"archive.tar.gz", "archive.tar.gz", true},
	{"C:\\Users\\me\\pic.jpg", "pic.jpg", true},
	{"a\u200bb", "ab", true},
	{"ŉ.txt", "ŉ.txt", true},
	{"ǅ", "ǅ", true},
	{"٣.txt", "٣.txt", true},
	{"a\ufeffb", "ab", true},
	{"résumé (final) [v2].pdf", "résumé_final_v2.pdf", true},
	{"%2e%2e%2fetc", "2e2e2fetc", true},
	{"a;b&c=d.txt", "abcd.txt", true},
	{"\u0085x\u0085", "x", true},
	{"'", "", false},
	{"_", "_", true},
	{"-", "-", true},
	{"a\\b/c", "c", true},
	{"\u202eexe.txt", "exe.txt", true},
	{"ﬁle.txt", "ﬁle.txt", true},
	{strings.Repeat("x", 300), strings.Repeat("x", 300), true},
}

var base64Golden = []struct {
	in   string
	ok   bool
	want string
}{
	{"QQ==", true, "41"},                                    // b'A'
	{"QQ", false, ""},                                       // Error: Incorrect padding
	{"QQ=", false, ""},                                      // Error: Incorrect padding
	{"QQ===", true, "41"},                                   // b'A'
	{"QQ====", true, "41"},                                  // b'A'
	{"QUI=", true, "4142"},                                  // b'AB'
	{"QUI", false, ""},                                      // Error: Incorrect padding
	{"QUJD", true, "414243"},                                // b'ABC'
	{"QUJDRA", false, ""},                                   // Error: Incorrect padding
	{"Q", false, ""},                                        // Error: Invalid base64-encoded string: number of data characters (1) cannot be 1 more than a multiple of 4
	{"QUJDR", false, ""},                                    // Error: Invalid base64-encoded string: number of data characters (5) cannot be 1 more than a multiple of 4
	{"=", true, ""},                                         // b''
	{"==", true, ""},                                        // b''
	{"", true, ""},                                          // b''
	{"QU=JD", true, "414243"},                               // b'ABC'
	{"QUJD=QUJD", true, "414243414243"},                     // b'ABCABC'
	{"QQ==QUJD", true, "41"},                                // b'A'
	{"QUI=QUJD", true, "4142"},                              // b'AB'
	{"QQ=Q=", true, "4104"},                                 // b'A\x04'
	{"Q=QQ=", true, "4104"},                                 // b'A\x04'
	{"QU\x0aJD", true, "414243"},                            // b'ABC'
	{" QUJD ", true, "414243"},                              // b'ABC'
	{"QU JD\x0d\x0a", true, "414243"},                       // b'ABC'
	{"QUJD\x0a", true, "414243"},                            // b'ABC'
	{"Q\x00UJD", true, "414243"},                            // b'ABC'
	{"-_-_", true, ""},                                      // b''
	{"QU-JD", true, "414243"},                               // b'ABC'
	{"QU_JD", true, "414243"},                               // b'ABC'
	{"+/+/", true, "fbffbf"},                                // b'\xfb\xff\xbf'
	{"QR==", true, "41"},                                    // b'A'
	{"QUJ=", true, "4142"},                                  // b'AB'
	{"QUK=", true, "4142"},                                  // b'AB'
	{"aGVsbG8gd29ybGQ=", true, "68656c6c6f20776f726c64"},    // b'hello world'
	{"aGVsbG8gd29ybGQ", false, ""},                          // Error: Incorrect padding
	{"aGVs bG8g d29y bGQ=", true, "68656c6c6f20776f726c64"}, // b'hello world'
	{"data:image/png;base64,iVBORw0KGgo=", false, ""},       // Error: Incorrect padding
	{"QQ=\x0a=", true, "41"},                                // b'A'
	{"QQ=x=", true, "410c"},                                 // b'A\x0c'
	{"QQ=.=", true, "41"},                                   // b'A'
	{"====", true, ""},                                      // b''
	{"Q===", false, ""},                                     // Error: Invalid base64-encoded string: number of data characters (1) cannot be 1 more than a multiple of 4
	{"QUJD====", true, "414243"},                            // b'ABC'
	{"QUJDQQ", false, ""},                                   // Error: Incorrect padding
	{"QUJDQQ=", false, ""},                                  // Error: Incorrect padding
	{"QUJDQQ==", true, "41424341"},                          // b'ABCA'
	{"QUJDQQ===", true, "41424341"},                         // b'ABCA'
	{"$$$$", true, ""},                                      // b''
	{"QUJD$", true, "414243"},                               // b'ABC'
	{"é", false, ""},                                        // ValueError: string argument should contain only ASCII characters
	{"QUJDé", false, ""},                                    // ValueError: string argument should contain only ASCII characters
	{"QUJDéQUJD", false, ""},                                // ValueError: string argument should contain only ASCII characters
	{"QQ==é", false, ""},                                    // ValueError: string argument should contain only ASCII characters
	{"QUJD\x7f", true, "414243"},                            // b'ABC'
	{"\x09\x0a", true, ""},                                  // b''
	{"QQ==\x0a", true, "41"},                                // b'A'
	{"QUJD\x0aQUJD\x0a", true, "414243414243"},              // b'ABCABC'
}
