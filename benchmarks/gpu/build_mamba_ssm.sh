#!/usr/bin/env bash
# Builds mamba-ssm's compiled selective scan for this machine's GPU alone, into /tmp/site, so that
# bench_scan.py can time the `cuda` backend in the same run as `triton` (issue: scan within 1.5x of mamba-ssm).
# Its setup.py compiles for about eight architectures; one takes about 140 s on 16 cores (DESIGN.md).
# Needs the sdist carried in .whl/src/ (pip download --no-deps --no-binary :all: mamba-ssm==2.3.2.post1).
set -euo pipefail
sdist=$(ls .whl/src/mamba_ssm-*.tar.gz | head -n 1)
arch=$(python3 -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())))")
src=/tmp/mamba_ssm_src
rm -rf "$src" && mkdir -p "$src" && tar xzf "$sdist" -C "$src" --strip-components=1
python3 - "$src/setup.py" "$arch" <<'PY'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
text = open(path).read()
text, dropped = re.subn(r'cc_flag\.append\("(-gencode|arch=compute_\d+,code=sm_\d+)"\)', "pass", text)
text, added = re.subn(r"(\n(\s*)cc_flag = \[\]\n)", rf'\1\2cc_flag += ["-gencode", "arch=compute_{arch},code=sm_{arch}"]\n', text, count=1)
if not dropped or added != 1:
    sys.exit(f"setup.py of this mamba-ssm version has another layout: {dropped} flags dropped, {added} added")
open(path, "w").write(text)
print(f"mamba-ssm: building for sm_{arch} only ({dropped // 2} other architectures dropped)")
PY
MAMBA_FORCE_BUILD=TRUE MAX_JOBS=$(nproc) python3 -m pip install -q --no-build-isolation --no-deps --no-index \
  --target /tmp/site "$src"
python3 -c "import selective_scan_cuda, mamba_ssm; print('mamba_ssm', mamba_ssm.__version__, 'imports')"
