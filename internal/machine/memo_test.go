package machine

import "testing"

// TestValidSetKeepsOnlyValid: a value found valid is not checked again; a
// refused one (a pasted private key, a ref with a token) is checked every
// time and never kept; a full set starts again.
func TestValidSetKeepsOnlyValid(t *testing.T) {
	var s validSet
	calls := 0
	check := func(v string) bool { calls++; return v == "good" }
	for i := 0; i < 3; i++ {
		if !s.valid("good", check) {
			t.Fatal("a valid value was refused")
		}
		if s.valid("-----BEGIN OPENSSH PRIVATE KEY-----", check) {
			t.Fatal("a refused value was called valid")
		}
	}
	if calls != 4 {
		t.Errorf("want the valid value checked once and the refused one every time (4 checks), got %d", calls)
	}
	if _, kept := s.m["-----BEGIN OPENSSH PRIVATE KEY-----"]; kept {
		t.Error("a refused value was kept")
	}
	for i := 0; i < validSetSize+1; i++ {
		s.valid("good"+string(rune('a'+i%26))+string(rune(i)), func(string) bool { return true })
	}
	if len(s.m) > validSetSize {
		t.Errorf("the set grew to %d, beyond %d", len(s.m), validSetSize)
	}
}
