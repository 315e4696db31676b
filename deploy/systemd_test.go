package deploy

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	u := unit{name: name, service: map[string][]string{}}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
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
