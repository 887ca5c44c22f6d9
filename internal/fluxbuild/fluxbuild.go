// Package fluxbuild reads a folder of manifests the way Flux's
// kustomize-controller applies it, so that labctl checks what the cluster
// will get and not what a plain YAML reader sees:
//
//   - a folder without a kustomization file gets one generated, listing
//     every *.yaml and *.yml file under it, in every sub-folder, and each
//     sub-folder that holds a kustomization of its own as one resource
//     (fluxcd/pkg/kustomize v1.35.6, kustomize_generator.go, scanManifests,
//     the generator kustomize-controller v1.9.5 calls in
//     internal/controller/kustomization_controller.go, generate);
//   - a file kustomize cannot decode fails the whole revision ("failed to
//     decode Kubernetes YAML from ...", scanManifests);
//   - the folder is built with kustomize's own krusty, with no load
//     restrictions and no plugins (kustomize_generator.go, Build), and the
//     result read back with the Kubernetes YAML decoder
//     (fluxcd/pkg/ssa utils.ReadObjects): YAML as kustomize parses it,
//     so `yes` is a string, a duplicate key fails the build, `key:` is null.
//
// Flux's source-controller also leaves out files by its ignore rules
// (.sourceignore, the GitRepository's spec.ignore); a claims folder holds
// none of the files those rules name by default, and they are not applied
// here.
package fluxbuild

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/provider"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// originAnnotation is where kustomize records the file an object came from
// when the kustomization asks for buildMetadata: [originAnnotations].
const originAnnotation = "config.kubernetes.io/origin"

// Object is one object Flux would apply, with the file it came from (the
// kustomization file, for a folder with one of its own).
type Object struct {
	File   string
	Object map[string]any
}

// FileError is a file (or folder) that fails the whole revision.
type FileError struct {
	File string
	Err  error
}

func (e FileError) Error() string { return e.File + ": " + e.Err.Error() }

// Build returns what Flux would apply from dir. Files that fail the build
// are returned as errors, each naming its file; then no object is returned,
// as Flux applies nothing of a revision it cannot build.
func Build(dir string) ([]Object, []FileError) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, []FileError{{File: dir, Err: err}}
	}
	if k := kustomizationIn(dir); k != "" {
		objs, err := build(filesys.MakeFsOnDisk(), dir, k)
		if err != nil {
			return nil, []FileError{{File: k, Err: err}}
		}
		return objs, nil
	}
	resources, errs := scan(dir)
	if len(errs) > 0 {
		return nil, errs
	}
	objs, err := buildGenerated(dir, resources)
	if err == nil {
		return objs, nil
	}
	// Name the files that fail on their own; else the folder (two files
	// with one object, say).
	for _, r := range resources {
		if _, ferr := buildGenerated(dir, []string{r}); ferr != nil {
			errs = append(errs, FileError{File: r, Err: ferr})
		}
	}
	if len(errs) == 0 {
		errs = []FileError{{File: dir, Err: err}}
	}
	return nil, errs
}

// File reads one file as Flux would read it in a folder of its own.
func File(path string) ([]Object, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Bytes(path, b)
}

// Bytes reads content as Flux would read a file named path holding it.
func Bytes(path string, content []byte) ([]Object, error) {
	if err := decodes(content); err != nil {
		return nil, err
	}
	fsys := filesys.MakeFsInMemory()
	dir := filepath.Dir(path)
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, err
	}
	if err := fsys.WriteFile(path, content); err != nil {
		return nil, err
	}
	return generatedBuild(fsys, dir, []string{path})
}

func kustomizationIn(dir string) string {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// scan lists the resources the generator would: manifest files, and
// folders with a kustomization of their own (scanManifests).
func scan(base string) ([]string, []FileError) {
	var resources []string
	var errs []FileError
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base {
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir // never in a source artifact
			}
			if kustomizationIn(p) != "" {
				resources = append(resources, p)
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := decodes(b); err != nil {
			errs = append(errs, FileError{File: p, Err: err})
			return nil
		}
		resources = append(resources, p)
		return nil
	})
	if err != nil {
		errs = append(errs, FileError{File: base, Err: err})
	}
	return resources, errs
}

// decodes is the generator's check of each file: kustomize's resource
// factory must read it (scanManifests). Kustomize may panic on odd input;
// the generator recovers, and so do we.
func decodes(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kustomize cannot parse it: %v", r)
		}
	}()
	if _, err := provider.NewDefaultDepProvider().GetResourceFactory().SliceFromBytes(b); err != nil {
		return fmt.Errorf("Flux cannot decode it as Kubernetes YAML, and fails the whole revision: %w", err)
	}
	return nil
}

// buildGenerated builds the generated kustomization of dir over an
// in-memory copy of the resources (the repository is never written).
func buildGenerated(dir string, resources []string) ([]Object, error) {
	fsys := filesys.MakeFsInMemory()
	for _, r := range resources {
		if err := copyIn(fsys, r); err != nil {
			return nil, err
		}
	}
	return generatedBuild(fsys, dir, resources)
}

func copyIn(fsys filesys.FileSystem, path string) error {
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return fsys.MkdirAll(p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := fsys.MkdirAll(filepath.Dir(p)); err != nil {
			return err
		}
		return fsys.WriteFile(p, b)
	})
}

func generatedBuild(fsys filesys.FileSystem, dir string, resources []string) ([]Object, error) {
	k := kustypes.Kustomization{
		TypeMeta:      kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		BuildMetadata: []string{kustypes.OriginAnnotations}, // ours: to name each object's file
	}
	for _, r := range resources {
		rel, err := filepath.Rel(dir, r)
		if err != nil {
			return nil, err
		}
		k.Resources = append(k.Resources, rel)
	}
	if len(k.Resources) == 0 {
		k.Namespace = "_placeholder" // as the generator does for an empty folder
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	kpath := filepath.Join(dir, konfig.DefaultKustomizationFileName())
	if err := fsys.WriteFile(kpath, b); err != nil {
		return nil, err
	}
	return build(fsys, dir, kpath)
}

// kustomize's build is not safe to run concurrently (Flux holds a lock
// around it too: kustomize_generator.go, Build).
var buildMu sync.Mutex

func build(fsys filesys.FileSystem, dir, kfile string) (objs []Object, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kustomize build failed: %v", r)
		}
	}()
	k := krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: kustypes.LoadRestrictionsNone,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	})
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build fails, and with it the whole Flux revision: %w", err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build fails, and with it the whole Flux revision: %w", err)
	}
	return read(dir, kfile, out)
}

// read decodes the build's output as Flux's ssa.ReadObjects does, and
// names each object's file from its origin annotation.
func read(dir, kfile string, out []byte) ([]Object, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 2048)
	var objs []Object
	for {
		u := &unstructured.Unstructured{}
		err := d.Decode(u)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read kustomize's output: %w", err)
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetKind() == kustypes.KustomizationKind && strings.HasPrefix(u.GetAPIVersion(), "kustomize.config.k8s.io/") {
			continue
		}
		file := kfile
		ann := u.GetAnnotations()
		if o, ok := ann[originAnnotation]; ok {
			var origin struct {
				Path string `json:"path"`
			}
			if yaml.Unmarshal([]byte(o), &origin) == nil && origin.Path != "" {
				file = filepath.Join(dir, origin.Path)
			}
			delete(ann, originAnnotation)
			if len(ann) == 0 {
				unstructured.RemoveNestedField(u.Object, "metadata", "annotations")
			} else {
				u.SetAnnotations(ann)
			}
		}
		objs = append(objs, Object{File: file, Object: u.Object})
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].File < objs[j].File })
	return objs, nil
}
