package clone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func requireGitLFS(t *testing.T) {
	t.Helper()
	requireGit(t)
	if out, err := exec.Command("git", "lfs", "version").CombinedOutput(); err != nil {
		t.Skipf("git-lfs not available (git lfs version: %v: %s)", err, bytes.TrimSpace(out))
	}
}

// lfsPointer is the pointer file git-lfs stores in place of content.
func lfsPointer(content []byte) (pointer, oid string) {
	sum := sha256.Sum256(content)
	oid = hex.EncodeToString(sum[:])
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", oid, len(content)), oid
}

// lfsBatchServer serves, on 127.0.0.1 and behind one basic-auth
// credential, both the git repositories under root (git http-backend) and
// the Git LFS batch API at <repo>/info/lfs/objects/batch, the endpoint
// git-lfs derives from the remote URL. Downloads are handed out, as real
// servers do, as a separate URL with its own one-off header.
type lfsBatchServer struct {
	*httptest.Server
	objects map[string][]byte // oid → content

	mu          sync.Mutex
	batchAuthOK int // batch requests that carried the right credential
	downloads   int
}

const lfsDownloadTicket = "download-ticket-0c4f"

func newLFSBatchServer(t *testing.T, root, user, password string, objects map[string][]byte) *lfsBatchServer {
	t.Helper()
	backend := &cgi.Handler{
		Path: filepath.Join(gitIn(t, root, "--exec-path"), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	s := &lfsBatchServer{objects: objects}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if oid, ok := strings.CutPrefix(r.URL.Path, "/lfs-objects/"); ok {
			s.download(w, r, oid)
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok || u != user || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/info/lfs/objects/batch") {
			s.batch(w, r)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

type lfsObject struct {
	OID     string `json:"oid"`
	Size    int64  `json:"size"`
	Actions map[string]struct {
		Href   string            `json:"href"`
		Header map[string]string `json:"header,omitempty"`
	} `json:"actions,omitempty"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (s *lfsBatchServer) batch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Operation string      `json:"operation"`
		Objects   []lfsObject `json:"objects"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil || req.Operation != "download" {
		http.Error(w, "only download batches", http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	s.batchAuthOK++
	s.mu.Unlock()
	resp := struct {
		Transfer string      `json:"transfer"`
		Objects  []lfsObject `json:"objects"`
	}{Transfer: "basic"}
	for _, o := range req.Objects {
		out := lfsObject{OID: o.OID, Size: o.Size}
		if _, ok := s.objects[o.OID]; ok {
			out.Actions = map[string]struct {
				Href   string            `json:"href"`
				Header map[string]string `json:"header,omitempty"`
			}{"download": {
				Href:   "http://" + r.Host + "/lfs-objects/" + o.OID,
				Header: map[string]string{"X-Download-Ticket": lfsDownloadTicket},
			}}
		} else {
			out.Error = &struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}{http.StatusNotFound, "object not found"}
		}
		resp.Objects = append(resp.Objects, out)
	}
	w.Header().Set("Content-Type", "application/vnd.git-lfs+json")
	json.NewEncoder(w).Encode(resp)
}

func (s *lfsBatchServer) download(w http.ResponseWriter, r *http.Request, oid string) {
	if r.Header.Get("X-Download-Ticket") != lfsDownloadTicket {
		http.Error(w, "no ticket", http.StatusForbidden)
		return
	}
	content, ok := s.objects[oid]
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.downloads++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(content)
}

func TestFetchLFSObjectsOverLocalBatchAPI(t *testing.T) {
	requireGitLFS(t)
	const user, token = "x-access-token", "tok-lfs-s3cr3t-3456"
	content := bytes.Repeat([]byte("real binary content \x00\x01\x02\n"), 64)
	pointer, oid := lfsPointer(content)

	// The repository holds only the pointer, as a push through git-lfs
	// would leave it; the content lives on the LFS server alone.
	work := t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "main")
	write(t, filepath.Join(work, ".gitattributes"), "*.bin filter=lfs diff=lfs merge=lfs -text\n")
	write(t, filepath.Join(work, "assets", "blob.bin"), pointer)
	write(t, filepath.Join(work, "README"), "lfs\n")
	gitIn(t, work, "add", ".")
	gitIn(t, work, "commit", "-q", "-m", "with an LFS object")
	sha := gitIn(t, work, "rev-parse", "HEAD")
	root := t.TempDir()
	bareRepo(t, work, root, "repo.git")
	srv := newLFSBatchServer(t, root, user, token, map[string][]byte{oid: content})
	url := srv.URL + "/repo.git"

	dst := t.TempDir()
	var log bytes.Buffer
	res, err := Fetch(context.Background(), Options{Network: testNet, URL: url, Username: user, Password: token, SHA: sha, Dir: dst, LFS: true}, &log)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, log.String())
	}
	if res.SHA != sha {
		t.Fatalf("SHA = %s, want %s", res.SHA, sha)
	}
	got, err := os.ReadFile(filepath.Join(dst, "assets", "blob.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("assets/blob.bin holds %d bytes starting %q, want the real %d-byte content\n%s", len(got), got[:min(len(got), 40)], len(content), log.String())
	}
	srv.mu.Lock()
	batches, downloads := srv.batchAuthOK, srv.downloads
	srv.mu.Unlock()
	if batches == 0 || downloads != 1 {
		t.Errorf("authenticated batch requests = %d, downloads = %d; want ≥1 and 1", batches, downloads)
	}
	if strings.Contains(log.String(), token) {
		t.Error("log contains the token")
	}
	for p, b := range filesUnder(t, filepath.Join(dst, ".git")) {
		if bytes.Contains(b, []byte(token)) {
			t.Errorf("%s holds the token", p)
		}
	}

	// Without LFS the pointer stays as it is: the pull is what brought
	// the content, not a smudge filter.
	plain := t.TempDir()
	if _, err := Fetch(context.Background(), Options{Network: testNet, URL: url, Username: user, Password: token, SHA: sha, Dir: plain}, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(plain, "assets", "blob.bin")); string(b) != pointer {
		t.Errorf("without LFS, assets/blob.bin = %q, want the pointer", b)
	}
}
