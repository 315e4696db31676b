package deploy

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
)

// unit is the [Service] section of a systemd unit: each key's values in order.
type unit struct {
	name    string
	service map[string][]string
}

func readUnit(t *testing.T, name string) unit {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("systemd", name))
	require.NoError(t, err)
	return parseUnit(t, name, string(b))
}

func parseUnit(t *testing.T, name, text string) unit {
	t.Helper()
	u := unit{name: name, service: map[string][]string{}}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", name, line)
			u.service[k] = append(u.service[k], v)
		}
	}
	return u
}

// one returns the single value of key.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	require.Len(t, u.service[key], 1, "%s: one %s=", u.name, key)
	return u.service[key][0]
}

type credential struct{ id, source string }

// credentials are the unit's LoadCredential=ID:PATH lines.
func (u unit) credentials() []credential {
	var out []credential
	for _, v := range u.service["LoadCredential"] {
		id, src, _ := strings.Cut(v, ":")
		out = append(out, credential{id, src})
	}
	return out
}

// TestSystemdUnitsCredentials checks the units hand every file to the dynamic user as a
// credential: each path the ExecStart command line names is in the credentials directory
// (%d, a LoadCredential= id) or under a StateDirectory= (%S), never elsewhere, and every
// credential is used. Only the sensor gets capabilities.
func TestSystemdUnitsCredentials(t *testing.T) {
	for _, name := range []string{"netwatch-sensor.service", "netwatch-collector.service"} {
		u := readUnit(t, name)
		assert.Equal(t, "yes", u.one(t, "DynamicUser"), name)
		ids := map[string]bool{}
		for _, c := range u.credentials() {
			assert.True(t, path.IsAbs(c.source), "%s: LoadCredential source %s is absolute", name, c.source)
			assert.Regexp(t, `^[A-Za-z0-9._-]+$`, c.id, name)
			assert.False(t, ids[c.id], "%s: credential %s twice", name, c.id)
			ids[c.id] = true
		}
		states := u.service["StateDirectory"]
		args := strings.Fields(u.one(t, "ExecStart"))
		require.Equal(t, "/usr/local/bin/"+strings.TrimSuffix(name, ".service"), args[0], name)
		used := map[string]bool{}
		for _, a := range args[1:] {
			if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
				a = v
			}
			switch {
			case strings.HasPrefix(a, "%d/"):
				id := strings.TrimPrefix(a, "%d/")
				assert.True(t, ids[id], "%s: ExecStart names credential %s, which no LoadCredential= provides", name, id)
				used[id] = true
			case strings.HasPrefix(a, "%S/"):
				dir, _, _ := strings.Cut(strings.TrimPrefix(a, "%S/"), "/")
				assert.Contains(t, states, dir, "%s: ExecStart names %s, outside its StateDirectory=", name, a)
			default:
				assert.False(t, strings.Contains(a, "/") || strings.Contains(a, "%"), "%s: ExecStart names %s: neither a credential (%%d/) nor in a state directory (%%S/)", name, a)
			}
		}
		for id := range ids {
			assert.True(t, used[id], "%s: credential %s is loaded but ExecStart does not use it", name, id)
		}
		assert.Contains(t, ids, strings.TrimPrefix(strings.TrimSuffix(name, ".service"), "netwatch-")+".yaml", "%s: its settings are a credential", name)
		caps := u.one(t, "AmbientCapabilities")
		if strings.Contains(name, "sensor") {
			assert.Equal(t, "CAP_NET_RAW CAP_NET_ADMIN", caps)
			assert.Empty(t, states, "the sensor keeps no state")
		} else {
			assert.Equal(t, "", caps, "the collector has no capabilities")
			assert.Equal(t, []string{"netwatch-collector"}, states)
		}
	}
}

// readmeSection returns the shell code blocks of one "## " section of README.md.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	text := string(b)
	i := strings.Index(text, "\n## "+heading+"\n")
	require.GreaterOrEqual(t, i, 0, "README.md has a section %q", heading)
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
		blocks = append(blocks, m[1])
	}
	require.NotEmpty(t, blocks, "README.md %q has sh blocks", heading)
	return blocks
}

// installed returns the files and directories `install` commands in the README blocks create
// (install [-m M] [-o U] [-g G] SRC DEST, install -d DIR..., install -t DIR SRC...).
func installed(t *testing.T, blocks []string) (files, dirs []string) {
	t.Helper()
	for _, b := range blocks {
		for _, line := range strings.Split(b, "\n") {
			if c, _, ok := strings.Cut(line, "#"); ok {
				line = c
			}
			for _, cmd := range strings.Split(line, "&&") {
				f := strings.Fields(cmd)
				if len(f) > 0 && f[0] == "sudo" {
					f = f[1:]
				}
				if len(f) == 0 || f[0] != "install" {
					continue
				}
				var args []string
				dirMode, target := false, ""
				for i := 1; i < len(f); i++ {
					switch f[i] {
					case "-m", "-o", "-g":
						i++
					case "-d":
						dirMode = true
					case "-t":
						i++
						target = f[i]
					default:
						require.False(t, strings.HasPrefix(f[i], "-"), "README: install option %s not understood by this test: %s", f[i], cmd)
						args = append(args, f[i])
					}
				}
				switch {
				case dirMode:
					dirs = append(dirs, args...)
				case target != "":
					for _, a := range args {
						files = append(files, path.Join(target, path.Base(a)))
					}
				case len(args) == 2 && !strings.HasSuffix(args[1], "/"):
					files = append(files, args[1])
				default:
					require.GreaterOrEqual(t, len(args), 2, "README: %s", cmd)
					for _, a := range args[:len(args)-1] {
						files = append(files, path.Join(args[len(args)-1], path.Base(a)))
					}
				}
			}
		}
	}
	return files, dirs
}

// TestReadmeInstallsWhatTheUnitsLoad parses deploy/README.md's systemd walkthrough: its
// install steps put the binary, the unit and every file a LoadCredential= line names at the
// paths the units use, in directories it creates; the certificates come from gen-certs.sh.
func TestReadmeInstallsWhatTheUnitsLoad(t *testing.T) {
	blocks := readmeSection(t, "systemd: a collector on host A, a sensor on host B, mutual TLS")
	files, dirs := installed(t, blocks)
	for _, name := range []string{"netwatch-sensor.service", "netwatch-collector.service"} {
		u := readUnit(t, name)
		want := []string{strings.Fields(u.one(t, "ExecStart"))[0], "/etc/systemd/system/" + name}
		for _, c := range u.credentials() {
			want = append(want, c.source)
		}
		for _, w := range want {
			assert.Contains(t, files, w, "README installs %s (for %s)", w, name)
			if d := path.Dir(w); strings.HasPrefix(d, "/etc/netwatch") {
				assert.Contains(t, dirs, d, "README creates %s", d)
			}
		}
		assert.Contains(t, strings.Join(blocks, "\n"), "systemctl enable --now "+strings.TrimSuffix(name, ".service"))
	}
	all := strings.Join(blocks, "\n")
	assert.Contains(t, all, "deploy/tls/gen-certs.sh ", "the walkthrough generates the certificates with the script")
	// Every command the walkthrough runs of ours uses flags the binaries and script have.
	sensor, collector := build(t)
	help := map[string]string{}
	for bin, p := range map[string]string{"netwatch-sensor": sensor, "netwatch-collector": collector, "gen-certs.sh": "tls/gen-certs.sh"} {
		out, _ := exec.Command(p, "--help").CombinedOutput()
		help[bin] = string(out)
	}
	for _, line := range strings.Split(all, "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			bin := path.Base(w)
			if _, ok := help[bin]; !ok || (i > 0 && f[i-1] != "sudo") {
				continue // not a command of ours in command position
			}
			for _, a := range f[i+1:] {
				if a == "#" || a == "|" || a == "&&" {
					break
				}
				if strings.HasPrefix(a, "--") {
					flag, _, _ := strings.Cut(a, "=")
					name := flag
					if bin != "gen-certs.sh" {
						name = "-" + strings.TrimPrefix(flag, "--") + " " // Go's flag usage: "  -name type"
						if !strings.Contains(help[bin], name) {
							name = "-" + strings.TrimPrefix(flag, "--") + "\n"
						}
					}
					assert.Contains(t, help[bin], name, "README: %s has no flag %s: %s", bin, flag, line)
				}
			}
		}
	}
}

// TestReadmeWalkthroughRuns executes the walkthrough's commands on this machine: host A and
// host B are two directories, / is a temporary root (the commands' /etc/netwatch,
// /etc/systemd/system and /usr/local/bin are moved under it, in the commands and in the
// installed settings), ssh and scp run locally and systemctl only records its arguments. Then
// each installed unit's ExecStart runs as systemd would run it: as an unprivileged user (the
// sensor with the unit's two ambient capabilities), %d a directory holding the unit's
// LoadCredential= files, %S the state root; the sensor, capturing on lo, reaches the collector
// over mutual TLS with the walkthrough's certificates.
func TestReadmeWalkthroughRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the units' commands run as user nobody, the sensor with ambient capabilities")
	}
	sensorBin, collectorBin := build(t)
	blocks := readmeSection(t, "systemd: a collector on host A, a sensor on host B, mutual TLS")
	root, hostA, hostB := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{"etc/systemd/system", "usr/local/bin", "var/lib"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(hostA, "bin"), 0o755))
	for _, b := range []string{sensorBin, collectorBin} {
		data, err := os.ReadFile(b)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(hostA, "bin", filepath.Base(b)), data, 0o755))
	}
	here, err := os.Getwd()
	require.NoError(t, err)
	require.NoError(t, os.Symlink(here, filepath.Join(hostA, "deploy")))

	prelude := `set -euo pipefail
R=` + root + ` HOST_B=` + hostB + `
export PATH="$R/usr/local/bin:$PATH"
sudo() { "$@"; }
make() { :; } # the binaries are built already
ssh() { shift; (cd "$HOST_B" && "$@"); }
scp() { local a=("$@"); local dst=${a[-1]}; unset 'a[-1]'; cp -r "${a[@]}" "$HOST_B/${dst#*:}"; }
systemctl() { echo "$*" >>"$R/systemctl.log"; }
install() { command install "$@"; local dst=${@: -1}; [[ $dst != *.yaml ]] || sed -i "s#/etc/netwatch/#$R/etc/netwatch/#g; s#^interface: eth1 #interface: lo   #" "$dst"; } # B's span port is lo here (the README says to edit interface)
`
	relocate := strings.NewReplacer("/etc/netwatch", root+"/etc/netwatch", "/etc/systemd/system", root+"/etc/systemd/system",
		"/usr/local/bin", root+"/usr/local/bin")
	var onA, onB []string
	for _, b := range blocks {
		switch {
		case strings.Contains(b, "cd netwatch-sensor"):
			onB = append(onB, relocate.Replace(b))
		case strings.Contains(b, "curl "):
			// The checks need the running services; done below.
		default:
			onA = append(onA, relocate.Replace(b))
		}
	}
	require.NotEmpty(t, onB)
	for _, s := range []struct{ dir, script string }{{hostA, strings.Join(onA, "\n")}, {hostB, strings.Join(onB, "\n")}} {
		cmd := exec.Command("bash", "-c", prelude+s.script)
		cmd.Dir = s.dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "in %s:\n%s\n%s", s.dir, s.script, out)
	}
	log, err := os.ReadFile(filepath.Join(root, "systemctl.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "enable --now netwatch-collector")
	assert.Contains(t, string(log), "enable --now netwatch-sensor")
	for _, f := range []string{"etc/netwatch/tls/collector.key", "etc/netwatch/tls/sensor.key"} {
		st, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}

	// The collector as its installed unit runs it, on loopback ports instead of 9090/8080.
	collectorLog := startUnit(t, root, "netwatch-collector.service", nil,
		"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-format", "json")
	var grpcAddr, httpURL string
	for grpcAddr == "" {
		for _, line := range strings.Split(collectorLog.String(), "\n") {
			var rec struct{ Msg, GRPC, HTTP string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "collector started" {
				grpcAddr, httpURL = rec.GRPC, rec.HTTP
			}
		}
		require.False(t, collectorLog.exited(), "collector exited: %s", collectorLog.String())
		time.Sleep(50 * time.Millisecond)
	}
	// The sensor dials 127.0.0.1 but checks the name of step 1 in the collector's certificate.
	const capNetAdmin, capNetRaw = 12, 13
	sensorLog := startUnit(t, root, "netwatch-sensor.service", []uintptr{capNetRaw, capNetAdmin},
		"--collector", grpcAddr, "--tls-server-name", "collector.example.net", "--interface", "lo", "--metrics-listen", "")
	// Until the collector lists it connected (the test's -timeout bounds this).
	for {
		resp, err := http.Get(httpURL + "api/v1/sensors")
		require.NoError(t, err)
		var body struct{ Sensors []map[string]any }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		if len(body.Sensors) == 1 && body.Sensors[0]["sensorId"] == "sensor-b" && body.Sensors[0]["connected"] == true {
			break
		}
		require.False(t, sensorLog.exited(), "sensor exited: %s", sensorLog.String())
		if l := sensorLog.String(); strings.Contains(l, "x509:") || strings.Contains(l, "tls:") {
			t.Fatalf("TLS handshake failed: %s\ncollector: %s", l, collectorLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unitProcess is the output of a unit's process and whether it has exited.
type unitProcess struct {
	syncbuf.Buffer
	done chan struct{}
}

func (p *unitProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startUnit runs the ExecStart of a unit installed under root the way systemd would: %d is a
// fresh directory holding its LoadCredential= files (readable only by the service's user),
// %S is root/var/lib with the StateDirectory= created, the user is nobody with the given
// ambient capabilities only. extra flags go last (they win).
func startUnit(t *testing.T, root, name string, ambient []uintptr, extra ...string) *unitProcess {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", name))
	require.NoError(t, err)
	u := parseUnit(t, name, string(b))
	creds := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.Mkdir(creds, 0o700))
	for _, c := range u.credentials() {
		data, err := os.ReadFile(filepath.Join(root, c.source))
		require.NoError(t, err, "%s: LoadCredential=%s:%s", name, c.id, c.source)
		require.NoError(t, os.WriteFile(filepath.Join(creds, c.id), data, 0o400))
		require.NoError(t, os.Chown(filepath.Join(creds, c.id), nobody, nobody))
	}
	require.NoError(t, os.Chown(creds, nobody, nobody))
	state := filepath.Join(root, "var/lib")
	for _, s := range u.service["StateDirectory"] {
		p := filepath.Join(state, s)
		require.NoError(t, os.MkdirAll(p, 0o700))
		require.NoError(t, os.Chown(p, nobody, nobody))
	}
	for _, start := range []string{filepath.Dir(creds), state} { // nobody reaches both
		for d := start; strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			require.NoError(t, os.Chmod(d, 0o755))
		}
	}
	args := strings.Fields(u.one(t, "ExecStart"))
	for i, a := range args {
		args[i] = strings.NewReplacer("%d", creds, "%S", state).Replace(a)
	}
	cmd := exec.Command(filepath.Join(root, args[0]), append(args[1:], extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}, AmbientCaps: ambient}
	cmd.Env = []string{"CREDENTIALS_DIRECTORY=" + creds}
	p := &unitProcess{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	require.NoError(t, cmd.Start())
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	return p
}
