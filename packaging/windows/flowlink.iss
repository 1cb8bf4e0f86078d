; Inno Setup script for Flowlink on Windows (Inno Setup 6.3 or later).
;
; Written and reviewed on Linux, NOT YET BUILT ON WINDOWS: expect to fix details the
; first time. build.ps1 beside this file makes the bundle and calls the compiler:
;     iscc /DAppVersion=0.1.0 packaging\windows\flowlink.iss
; Input: dist\flowlink\ (PyInstaller: flowlink.exe windowed, flowlink-cli.exe console,
; _internal\) and build\icons\flowlink.ico (packaging\icons.py).
; Output: dist\flowlink-<version>-setup.exe.
;
; Installs per user by default (no administrator rights needed, under
; %LOCALAPPDATA%\Programs\Flowlink); the dialog offers an install for all users.
; Workspaces (%LOCALAPPDATA%\Flowlink) are the user's data: uninstalling leaves them.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
; The AppId identifies the product for upgrades and uninstall: never change it.
AppId={{6F1C2B3A-8E4D-4C1B-9A57-3D2E5F80B6C4}
AppName=Flowlink
AppVersion={#AppVersion}
AppVerName=Flowlink {#AppVersion}
AppPublisher=Flowlink
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\Flowlink
DefaultGroupName=Flowlink
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Qt 6 runs on Windows 10 1809 and later.
MinVersion=10.0.17763
SourceDir=..\..
OutputDir=dist
OutputBaseFilename=flowlink-{#AppVersion}-setup
SetupIconFile=build\icons\flowlink.ico
UninstallDisplayIcon={app}\flowlink.exe
UninstallDisplayName=Flowlink
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Close a running Flowlink (Restart Manager) before files are replaced or removed.
CloseApplications=yes
RestartApplications=no
; The Run value below is per user on purpose (it is what the app itself writes).
UsedUserAreasWarning=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "startup"; Description: "Start Flowlink when I sign in"; GroupDescription: "Start:"; Flags: unchecked

[Files]
Source: "dist\flowlink\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Flowlink"; Filename: "{app}\flowlink.exe"; Comment: "Run flow scripts and link workspaces"
Name: "{autodesktop}\Flowlink"; Filename: "{app}\flowlink.exe"; Tasks: desktopicon

[Registry]
; The same value the app's "Start at login" checkbox writes (flowlink.autostart).
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "Flowlink"; ValueData: """{app}\flowlink.exe"""; Tasks: startup; Flags: uninsdeletevalue
; Whether the installer or the app wrote it, uninstalling removes it (ValueType none:
; nothing is written at install time).
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: none; ValueName: "Flowlink"; Flags: uninsdeletevalue dontcreatekey

[Run]
Filename: "{app}\flowlink.exe"; Description: "{cm:LaunchProgram,Flowlink}"; Flags: nowait postinstall skipifsilent
