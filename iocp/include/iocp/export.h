/*
 * export.h: IOCP_API, on every function of the public API, so that iocp.dll exports those
 * and nothing else (the engine's private helpers stay private), and a program using the DLL
 * imports them directly (no thunk through the import library):
 *
 *   building iocp.dll (IOCP_BUILDING_DLL, set by the build)  __declspec(dllexport)
 *   using the static library (IOCP_STATIC)                   nothing
 *   using iocp.dll                                           __declspec(dllimport)
 *
 * The CMake targets set IOCP_STATIC for their users (iocp::iocp_static, and the static
 * library inside this build); so do iocp-static.pc and the MSYS2 notes. A program that
 * includes these headers without the build's help and links the static library must define
 * IOCP_STATIC itself. Off Windows (the framing parser's native fuzz and sanitizer builds)
 * there is no DLL and IOCP_API is empty.
 */
#ifndef IOCP_EXPORT_H
#define IOCP_EXPORT_H

#if defined(IOCP_STATIC) || !defined(_WIN32)
#define IOCP_API
#elif defined(IOCP_BUILDING_DLL)
#define IOCP_API __declspec(dllexport)
#else
#define IOCP_API __declspec(dllimport)
#endif

#endif
