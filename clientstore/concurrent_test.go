package clientstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// helperEnv, when set, makes the test binary act as a second command
// importing into a store (see TestMain), so the file lock is tested across
// processes and not only goroutines.
const helperEnv = "CLIENTSTORE_TEST_IMPORT_HELPER"

// importJob is what one importer does: import each file, rounds times, in
// a shuffled order. The password is read from a file, never an argument.
type importJob struct {
	Dir          string
	Files        []string
	PasswordFile string
	Rounds       int
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		var job importJob
		if err := json.Unmarshal([]byte(spec), &job); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		added, err := job.run()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(added)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// run performs the job and returns how many times each store/thumbprint
// was reported Added.
func (job importJob) run() (map[string]int, error) {
	s, err := Open(job.Dir)
	if err != nil {
		return nil, err
	}
	pw, err := os.ReadFile(job.PasswordFile)
	if err != nil {
		return nil, err
	}
	added := map[string]int{}
	for range job.Rounds {
		files := append([]string(nil), job.Files...)
		rand.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			got, err := s.Import(data, string(pw))
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", f, err)
			}
			for _, g := range got {
				if g.Added {
					added[g.Store+"/"+g.Thumbprint]++
				}
			}
		}
	}
	return added, nil
}

// TestConcurrentImport runs two goroutines and two processes importing the
// same four files (four users under one CA) into one store at once. Each
// certificate must be reported added exactly once, and the store must end
// with the four personal certificates, each with its own key, the
// intermediate and the root, and no temporary files.
func TestConcurrentImport(t *testing.T) {
	p := newPKI(t, "p256", "user0")
	tmp := t.TempDir()
	pwFile := filepath.Join(tmp, "pw.txt")
	writeFile(t, pwFile, []byte(testPassword))
	var files []string
	want := map[string]bool{
		Intermediate + "/" + certportal.Thumbprint(p.ica.Raw): true,
		Root + "/" + certportal.Thumbprint(p.root.Raw):        true,
	}
	for i := range 4 {
		u := *p
		if i > 0 {
			u.leaf, u.leafKey = p.issueLeaf(t, "p256", fmt.Sprintf("user%d", i), time.Now().Add(-time.Minute))
		}
		f := filepath.Join(tmp, fmt.Sprintf("user%d.p12", i))
		writeFile(t, f, u.p12(t, pkcs12.Modern2023))
		files = append(files, f)
		want[Personal+"/"+certportal.Thumbprint(u.leaf.Raw)] = true
	}
	job := importJob{Dir: filepath.Join(tmp, "store"), Files: files, PasswordFile: pwFile, Rounds: 5}
	spec, _ := json.Marshal(job)

	var (
		mu    sync.Mutex
		total = map[string]int{}
		wg    sync.WaitGroup
	)
	collect := func(added map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		for k, n := range added {
			total[k] += n
		}
	}
	for range 2 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("helper process: %v\n%s", err, stderr.String())
				return
			}
			var added map[string]int
			if err := json.Unmarshal(out, &added); err != nil {
				t.Errorf("helper process output %q: %v", out, err)
				return
			}
			collect(added)
		})
		wg.Go(func() {
			added, err := job.run()
			if err != nil {
				t.Errorf("goroutine: %v", err)
				return
			}
			collect(added)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for k := range want {
		if total[k] != 1 {
			t.Errorf("%s was reported added %d times, want exactly once", k, total[k])
		}
	}

	s, err := Open(job.Dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Errorf("store holds %d certificates, want %d: %v", len(list), len(want), thumbs(list))
	}
	for _, e := range list {
		if !want[e.Store+"/"+e.Thumbprint] {
			t.Errorf("unexpected %s/%s", e.Store, e.Thumbprint)
		}
		if e.Store != Personal {
			continue
		}
		key, err := s.readKey(e.Thumbprint)
		if err != nil {
			t.Errorf("%s: %v", e.IssuedTo, err)
		} else if !samePublicKey(e.Cert.PublicKey, key.Public()) {
			t.Errorf("%s: the stored key is not the certificate's", e.IssuedTo)
		}
	}
	for _, line := range snapshot(t, job.Dir) {
		if strings.Contains(line, atomicfile.TempPrefix) {
			t.Errorf("temporary file left behind: %s", line)
		}
	}
}
