# ROS 2 from PyPI wheels: the exported `<pkg>::<pkg>__rosidl_generator_py` targets carry include
# directories of the machine that built the wheels (/opt/python/...), which makes CMake's generate
# step fail. Point them at this machine's Python and NumPy headers. On a normal ROS install the
# directories exist and this changes nothing.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
get_property(_ssr_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target ${_ssr_targets})
  if(_target MATCHES "__rosidl_generator_py$")
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    set(_missing FALSE)
    foreach(_dir ${_dirs})
      if(NOT EXISTS "${_dir}")
        set(_missing TRUE)
      endif()
    endforeach()
    if(_missing)
      set_target_properties(${_target} PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endif()
endforeach()
