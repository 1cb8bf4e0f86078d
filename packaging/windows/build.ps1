# Build dist\flowlink-<version>-setup.exe on Windows:
#     powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
# Written and reviewed on Linux, NOT YET RUN ON WINDOWS. Needs Python 3.11+ with
# `pip install -e .[gui,package]` in .venv, and Inno Setup 6.3+ (iscc.exe on PATH or in
# its default folder).
$ErrorActionPreference = "Stop"
$root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $root
$python = if ($env:PYTHON) { $env:PYTHON } else { Join-Path $root ".venv\Scripts\python.exe" }

$init = Get-Content "app\flowlink\__init__.py" -Raw
if ($init -notmatch '__version__ = "([^"]+)"') { throw "no __version__ in app\flowlink\__init__.py" }
$version = $Matches[1]

& $python packaging\icons.py build\icons
if ($LASTEXITCODE -ne 0) { throw "icons.py failed" }
$env:FLOWLINK_ICONS = Join-Path $root "build\icons"
& $python -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build\pyinstaller packaging\flowlink.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

# The console program must answer before it is worth packaging.
& dist\flowlink\flowlink-cli.exe --version
if ($LASTEXITCODE -ne 0) { throw "flowlink-cli.exe --version failed" }

$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
& $iscc "/DAppVersion=$version" packaging\windows\flowlink.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Write-Host "built dist\flowlink-$version-setup.exe"
