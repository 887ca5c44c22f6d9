package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	st, err := Load(dir)
	if err != nil || st.Version != Version || st.Applied != nil {
		t.Fatalf("Load of a fresh folder = %+v, %v; want an empty state", st, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st.PushApplied(Generation{Commit: "a", Number: 1, StorePath: "/nix/store/a", Time: now})
	st.PushApplied(Generation{Commit: "b", Number: 2, StorePath: "/nix/store/b", Time: now})
	st.MarkBad(BadCommit{Commit: "c", Stage: StageSwitch, Error: "boom", Time: now})
	st.Fail(StageSwitch)
	if err := Save(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("round trip: -want, +got:\n%s", diff)
	}
	if got.Applied.Commit != "b" || len(got.History) != 1 || got.History[0].Commit != "a" {
		t.Errorf("PushApplied keeps the previous good generation in History: %+v", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*")); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := map[string]struct {
		reason  string
		content string
		wantErr string
	}{
		"Torn":  {reason: "a file the agent cannot parse is never overwritten; the error says what to do", content: `{"version":1,"applied":`, wantErr: "move it aside"},
		"Newer": {reason: "a newer agent's state is not silently downgraded", content: `{"version":99}`, wantErr: "upgrade nix-gitops"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error = %v, want one containing %q", tc.reason, err, tc.wantErr)
			}
		})
	}
}

func TestMarkBadKeepsRecent(t *testing.T) {
	st := &State{}
	for i := 0; i < 30; i++ {
		st.MarkBad(BadCommit{Commit: strconv.Itoa(i)})
	}
	st.MarkBad(BadCommit{Commit: "29", Stage: "again"})
	if len(st.BadCommits) != 20 || st.BadCommits[0].Commit != "29" || st.BadCommits[0].Stage != "again" {
		t.Errorf("MarkBad keeps the newest 20, the newest first, without duplicates: %+v", st.BadCommits[:2])
	}
	if _, bad := st.IsBad("5"); bad {
		t.Errorf("the oldest records are dropped")
	}
	st.Unmark("29")
	if _, bad := st.IsBad("29"); bad {
		t.Errorf("Unmark did not forget")
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l1, err := Acquire(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Acquire(done, dir)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "held by pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second Acquire without waiting: %v, want ErrBusy naming the holder", err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), dir)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a waiting Acquire returned while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := l1.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting Acquire did not get the lock after Release")
	}
}
