// Package deploy holds no code: its tests check the deployment files in this directory
// against the binaries they start (no cluster, systemd or Docker engine runs here).
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"netwatch.dev/common/testproc"
)

var (
	buildOnce          sync.Once
	buildDir, buildErr = "", error(nil)
)

// TestMain removes the binaries build compiled.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// build compiles both binaries once per test run.
func build(t *testing.T) (sensor, collector string) {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "netwatch-deploy-bin"); buildErr != nil {
			return
		}
		for _, pkg := range []string{"netwatch.dev/sensor/cmd/netwatch-sensor", "netwatch.dev/collector/cmd/netwatch-collector"} {
			if _, buildErr = testproc.Build(buildDir, pkg); buildErr != nil {
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(buildDir, "netwatch-sensor"), filepath.Join(buildDir, "netwatch-collector")
}

// TestSystemdUnitsVerify runs `systemd-analyze verify` on both units, with ExecStart
// pointed at freshly built binaries, and checks the hardening they promise.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze is needed (Debian package systemd; make deps installs it)")
	sensor, collector := build(t)
	dir := t.TempDir()
	var units []string
	for name, bin := range map[string]string{"netwatch-sensor.service": sensor, "netwatch-collector.service": collector} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		require.NoError(t, err)
		text := string(b)
		assert.Contains(t, text, "NoNewPrivileges=yes", name)
		assert.Contains(t, text, "ProtectSystem=strict", name)
		assert.Contains(t, text, "DynamicUser=yes", name)
		if strings.Contains(name, "sensor") {
			assert.Contains(t, text, "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n")
			assert.Contains(t, text, "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN\n")
		} else {
			assert.Contains(t, text, "CapabilityBoundingSet=\n")
		}
		text = strings.ReplaceAll(text, "/usr/local/bin/"+strings.TrimSuffix(name, ".service"), bin)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		units = append(units, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warnings")
}

// TestExampleConfigsParse loads the example configuration files with the binaries: every
// field must be one of their flags, with a valid value.
func TestExampleConfigsParse(t *testing.T) {
	sensor, collector := build(t)
	for bin, file := range map[string]string{sensor: "config/sensor.yaml", collector: "config/collector.yaml"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "--config", file, "--print-config")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "%s --config %s: %s", filepath.Base(bin), file, stderr.String())
		var effective map[string]string
		require.NoError(t, yaml.Unmarshal(stdout.Bytes(), &effective))
		var doc map[string]any
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &doc))
		for k := range doc {
			assert.Contains(t, effective, k, "%s: field %s", file, k)
		}
	}
}

// docs reads every YAML document of a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, path)
		if d != nil {
			out = append(out, d)
		}
	}
}

// get walks a path of map keys and list indexes ("spec.template.spec.containers.0").
func get(t *testing.T, v any, path string) any {
	t.Helper()
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[part]; !ok {
				t.Fatalf("missing %q of %s", part, path)
			}
		case []any:
			i := int(part[0] - '0')
			require.Less(t, i, len(x), path)
			v = x[i]
		default:
			t.Fatalf("%s: %T has no %q", path, v, part)
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	slices.Sort(out)
	return out
}

// TestKubernetesManifests checks the manifests' structure: what a cluster would reject
// or what would make the sensor fail (capabilities, host network, TLS from a secret).
func TestKubernetesManifests(t *testing.T) {
	kinds := map[string]map[string]any{}
	for _, f := range []string{"namespace.yaml", "collector.yaml", "sensor.yaml"} {
		for _, d := range docs(t, filepath.Join("kubernetes", f)) {
			for _, k := range []string{"apiVersion", "kind", "metadata"} {
				require.Contains(t, d, k, f)
			}
			name := get(t, d, "metadata.name").(string)
			require.NotEmpty(t, name)
			if d["kind"] != "Namespace" {
				assert.Equal(t, "netwatch", get(t, d, "metadata.namespace"), "%s %s", f, name)
			}
			kinds[d["kind"].(string)] = d
		}
	}
	for _, k := range []string{"Namespace", "PersistentVolumeClaim", "Deployment", "Service", "DaemonSet"} {
		require.Contains(t, kinds, k)
	}
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		w := kinds[kind]
		assert.Equal(t, get(t, w, "spec.selector.matchLabels"), pick(get(t, w, "spec.template.metadata.labels"), get(t, w, "spec.selector.matchLabels")), "%s selector matches its pods", kind)
		c := get(t, w, "spec.template.spec.containers.0")
		for _, lim := range []string{"cpu", "memory"} {
			assert.NotEmpty(t, get(t, c, "resources.limits."+lim), "%s limit %s", kind, lim)
		}
		assert.Equal(t, false, get(t, c, "securityContext.allowPrivilegeEscalation"), kind)
		assert.Equal(t, []string{"ALL"}, strs(get(t, c, "securityContext.capabilities.drop")), kind)
		// Every TLS path in the args is under a mounted secret volume.
		mounts := map[string]string{}
		for _, m := range get(t, c, "volumeMounts").([]any) {
			mounts[get(t, m, "name").(string)] = get(t, m, "mountPath").(string)
		}
		secrets := map[string]bool{}
		for _, v := range get(t, w, "spec.template.spec.volumes").([]any) {
			if s, ok := v.(map[string]any)["secret"]; ok {
				secrets[get(t, v, "name").(string)] = get(t, s, "secretName") != ""
			}
		}
		for _, a := range strs(get(t, c, "args")) {
			if _, path, ok := strings.Cut(a, "=/etc/netwatch/tls/"); ok {
				assert.True(t, secrets["tls"] && mounts["tls"] == "/etc/netwatch/tls", "%s: %s comes from the tls secret (%s)", kind, a, path)
			}
		}
	}
	ds := kinds["DaemonSet"]
	assert.Equal(t, true, get(t, ds, "spec.template.spec.hostNetwork"))
	sc := get(t, ds, "spec.template.spec.containers.0.securityContext")
	assert.Equal(t, []string{"NET_ADMIN", "NET_RAW"}, strs(get(t, sc, "capabilities.add")))
	args := strs(get(t, ds, "spec.template.spec.containers.0.args"))
	for _, want := range []string{"--collector=", "--ca=", "--tls-cert=", "--tls-key="} {
		assert.True(t, slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, want) }), "sensor arg %s", want)
	}
	// The Service exposes the collector's named ports and selects its pods.
	svc, dep := kinds["Service"], kinds["Deployment"]
	assert.Equal(t, get(t, svc, "spec.selector"), get(t, dep, "spec.selector.matchLabels"))
	names := map[string]bool{}
	for _, p := range get(t, dep, "spec.template.spec.containers.0.ports").([]any) {
		names[get(t, p, "name").(string)] = true
	}
	for _, p := range get(t, svc, "spec.ports").([]any) {
		assert.True(t, names[get(t, p, "targetPort").(string)], "service port %v targets a container port", p)
	}
}

// pick returns the keys of sub found in m (so template labels may carry more).
func pick(m, sub any) map[string]any {
	out := map[string]any{}
	for k := range sub.(map[string]any) {
		out[k] = m.(map[string]any)[k]
	}
	return out
}

// TestContainerFiles checks the Dockerfiles are multi-stage static builds of packages
// that exist, and the compose file runs both on the host network with the sensor's two
// capabilities (no Docker engine runs here to build them).
func TestContainerFiles(t *testing.T) {
	for _, name := range []string{"sensor", "collector"} {
		b, err := os.ReadFile(filepath.Join("container", "Dockerfile."+name))
		require.NoError(t, err)
		text := string(b)
		assert.Equal(t, 2, strings.Count(text, "\nFROM ")+boolInt(strings.HasPrefix(text, "FROM ")), "two stages in Dockerfile.%s", name)
		assert.Contains(t, text, "CGO_ENABLED=0")
		pkg := "./" + name + "/cmd/netwatch-" + name
		assert.Contains(t, text, pkg)
		_, err = os.Stat(filepath.Join("..", pkg, "main.go"))
		assert.NoError(t, err, "%s exists", pkg)
	}
	compose := docs(t, "container/compose.yaml")[0]
	for _, s := range []string{"collector", "sensor"} {
		assert.Equal(t, "host", get(t, compose, "services."+s+".network_mode"))
	}
	assert.Equal(t, []string{"NET_ADMIN", "NET_RAW"}, strs(get(t, compose, "services.sensor.cap_add")))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
