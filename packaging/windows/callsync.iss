; Inno Setup script: the Windows installer around the PyInstaller one-folder build.
; Build on Windows after `python packaging/build.py`:
;   iscc /DAppVersion=0.1.0 packaging\windows\callsync.iss      -> dist\callsync-setup-0.1.0.exe
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6A0C3E1B-2E4B-4C7A-9F1D-5B3C2A1E0D9F}
AppName=callsync
AppVersion={#AppVersion}
AppPublisher=callsync
DefaultDirName={autopf}\callsync
DefaultGroupName=callsync
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=callsync-setup-{#AppVersion}
SetupIconFile=..\..\gui\assets\callsync.ico
UninstallDisplayIcon={app}\callsync.exe
Compression=lzma2/fast
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "startonlogin"; Description: "Start callsync when I log in"; GroupDescription: "Start-up:"

[Files]
Source: "..\..\dist\callsync\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\callsync"; Filename: "{app}\callsync.exe"; Parameters: "gui"
Name: "{group}\Uninstall callsync"; Filename: "{uninstallexe}"

[Registry]
; Start on login through the user's Run key (removed again on uninstall).
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "callsync"; \
  ValueData: """{app}\callsync.exe"" gui"; Tasks: startonlogin; Flags: uninsdeletevalue

[Run]
Filename: "{app}\callsync.exe"; Parameters: "gui"; Description: "Start callsync now"; Flags: nowait postinstall skipifsilent
